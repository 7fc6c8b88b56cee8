package node

import (
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// moreExecutors adds the docker and vm executors when they are enabled and
// usable. (Wired as the executors land.)
func (n *Node) moreExecutors(data string, execs map[ensemble.Executor]executor.Executor, closers *[]func()) error {
	return nil
}

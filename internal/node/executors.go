package node

import (
	"fmt"
	"os"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
	"github.com/dmsnet/dms/internal/executor/vm"
)

// moreExecutors adds the docker and vm executors when the configuration
// enables them and the machine can run them (the resource detection found
// a Docker engine answering, or QEMU). An executor that cannot start is
// left out with a warning: the node then offers only what it runs.
func (n *Node) moreExecutors(data string, execs map[ensemble.Executor]executor.Executor, closers *[]func()) error {
	c := n.cfg.Config.Executor
	usable := map[string]bool{}
	for _, e := range n.resources.Machine().Executors {
		usable[e] = true
	}
	if c.Docker.Enabled && usable[string(ensemble.Docker)] {
		// The configuration's default is the block list; emptied (nil),
		// it blocks nothing (nil would be docker's default).
		blocks := c.BlockNetworks
		if blocks == nil {
			blocks = []string{}
		}
		d, err := docker.New(docker.Config{
			Host:            c.Docker.Host,
			AllowPrivileged: c.Docker.AllowPrivileged,
			BlockNetworks:   blocks,
			// Nodes sharing one engine (a devnet) never adopt each other's
			// containers.
			Labels: map[string]string{"dms.node": n.host.ID()},
			Logger: n.log,
		})
		if err != nil {
			n.log.Warn("docker executor unavailable", "err", err)
		} else {
			execs[ensemble.Docker] = d
			*closers = append(*closers, func() { d.Close() })
		}
	}
	if c.VM.Enabled && usable[string(ensemble.VM)] {
		if k := c.VM.Kernel; k != "" {
			if st, err := os.Stat(k); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("executor.vm.kernel: %s is not a file", k)
			}
		}
		v, err := vm.New(vm.Config{QEMUPath: c.VM.QEMU, Accel: c.VM.Accel, Logger: n.log})
		if err != nil {
			n.log.Warn("vm executor unavailable", "err", err)
		} else {
			execs[ensemble.VM] = v
			*closers = append(*closers, func() { v.Close() })
		}
	}
	return nil
}

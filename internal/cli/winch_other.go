//go:build !unix

package cli

import (
	"context"
	"os"

	"github.com/dmsnet/dms/api"
)

// watchSize reports no size changes where there is no SIGWINCH.
func watchSize(context.Context, *os.File) <-chan api.TermSize { return nil }

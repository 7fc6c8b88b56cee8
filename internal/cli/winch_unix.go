//go:build unix

package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/dmsnet/dms/api"
)

// watchSize sends out's new size on the returned channel at every SIGWINCH
// until ctx ends.
func watchSize(ctx context.Context, out *os.File) <-chan api.TermSize {
	sizes := make(chan api.TermSize, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(winch)
		for {
			select {
			case <-winch:
				if w, h, err := term.GetSize(int(out.Fd())); err == nil {
					select {
					case sizes <- api.TermSize{Rows: h, Cols: w}:
					default: // the previous size is still unsent; the next signal brings the latest
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return sizes
}

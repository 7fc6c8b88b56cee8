package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/storage"
	"github.com/dmsnet/dms/internal/storage/transfer"
)

// newDeploymentResultsCmd is `dms deployment results ID [-o DIR]`.
func newDeploymentResultsCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "results ID [-o DIR]",
		Short: "Download what a deployment's allocations left in their out volumes",
		Long: `Download what a deployment's allocations left in their out and inout volumes
into DIR/<allocation>/<volume>/ (default DIR: ./<deployment ID>): an s3 volume
through your node (it holds the keys), a local volume from its provider
through the network. Every file is checked by its SHA-256; running the
command again resumes partial files and skips complete ones.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Deployment(a.ctx, args[0], 0, 0)
			if err != nil {
				return err
			}
			vols, err := c.Results(a.ctx, d.ID)
			if err != nil {
				return err
			}
			if len(vols) == 0 {
				return fmt.Errorf("deployment %s has no out volumes (an s3 volume in mode out or inout, or a local volume in mode out)", d.ID)
			}
			if dir == "" {
				dir = d.ID
			}
			bar := newTransferBar(a.stderr, isTerminal(a.stderr))
			var notReady []string
			fetched := 0
			for _, v := range vols {
				if !v.Ready {
					notReady = append(notReady, fmt.Sprintf("%s/%s: %s", v.Allocation, v.Volume, v.Reason))
					continue
				}
				dest := filepath.Join(dir, v.Allocation, v.Volume)
				src := resultSource{c: c, id: d.ID, alloc: v.Allocation, volume: v.Volume}
				bar.start(v.Allocation + "/" + v.Volume)
				st, err := transfer.Download(a.ctx, src, dest, bar.update)
				bar.done()
				if err != nil {
					return fmt.Errorf("results of %s/%s: %w", v.Allocation, v.Volume, err)
				}
				fetched++
				kept := ""
				if st.Skipped > 0 {
					kept = fmt.Sprintf(" (%d more already here)", st.Skipped)
				}
				fmt.Fprintf(a.stdout, "%s/%s: %d files, %s%s into %s\n", v.Allocation, v.Volume, st.Files, match.Bytes(st.Bytes), kept, dest)
			}
			if len(notReady) > 0 {
				msg := "not ready: " + strings.Join(notReady, "; ")
				if fetched == 0 {
					return fmt.Errorf("%s", msg)
				}
				fmt.Fprintln(a.stderr, msg)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "output", "o", "", "directory to download into (default ./<deployment ID>)")
	return cmd
}

// resultSource reads a result volume through the node's REST API.
type resultSource struct {
	c                 *api.Client
	id, alloc, volume string
}

func (s resultSource) Manifest(ctx context.Context) (transfer.Manifest, error) {
	m, err := s.c.ResultManifest(ctx, s.id, s.alloc, s.volume)
	if err != nil {
		return transfer.Manifest{}, err
	}
	out := transfer.Manifest{Bytes: m.Bytes}
	for _, f := range m.Files {
		out.Files = append(out.Files, transfer.File{Path: f.Path, Size: f.Size, SHA256: f.SHA256})
	}
	return out, nil
}

func (s resultSource) Chunk(ctx context.Context, path string, off int64, n int) ([]byte, error) {
	return s.c.ResultChunk(ctx, s.id, s.alloc, s.volume, path, off, n)
}

// transferBar draws a progress bar of a transfer on a terminal, at most
// ten times a second; elsewhere it says nothing.
type transferBar struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	name string
	last time.Time
	p    storage.Progress
}

func newTransferBar(w io.Writer, tty bool) *transferBar { return &transferBar{w: w, tty: tty} }

func (b *transferBar) start(name string) {
	b.mu.Lock()
	b.name, b.p, b.last = name, storage.Progress{}, time.Time{}
	b.mu.Unlock()
}

func (b *transferBar) update(p storage.Progress) {
	if !b.tty {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
	if time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	b.draw()
}

func (b *transferBar) draw() {
	const width = 30
	frac := 0.0
	if b.p.TotalBytes > 0 {
		frac = min(1, float64(b.p.Bytes)/float64(b.p.TotalBytes))
	}
	fill := int(frac * width)
	fmt.Fprintf(b.w, "\r%s [%s%s] %3.0f%% %s / %s, %d/%d files ", b.name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		frac*100, match.Bytes(b.p.Bytes), match.Bytes(b.p.TotalBytes), b.p.Objects, b.p.TotalObjects)
}

func (b *transferBar) done() {
	if !b.tty {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
	fmt.Fprintln(b.w)
}

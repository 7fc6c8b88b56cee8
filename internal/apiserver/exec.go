package apiserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/api"
)

// ExecService is implemented by a DeploymentService that can run commands
// in running allocations (POST .../allocations/{alloc}/exec); without it the
// endpoint answers 503.
type ExecService interface {
	// Exec runs req.Cmd in the allocation, relaying stdin and the output,
	// and returns the command's exit code.
	Exec(ctx context.Context, id, alloc string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

func (s *Server) routesExec() {
	s.handle("POST /api/v1/deployments/{id}/allocations/{alloc}/exec", s.handleExec)
}

// handleExec switches the connection to api.ExecProtocol and relays one
// command's streams in frames until it ends.
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	if !s.deploymentsReady(w) {
		return
	}
	ex, ok := s.cfg.Deployments.(ExecService)
	if !ok {
		unavailable(w, "exec")
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.ExecProtocol) {
		w.Header().Set("Upgrade", api.ExecProtocol)
		writeError(w, http.StatusUpgradeRequired, api.CodeBadRequest, "exec needs Connection: Upgrade and Upgrade: "+api.ExecProtocol)
		return
	}
	req, err := api.ParseExecRequest(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	id, alloc := r.PathValue("id"), r.PathValue("alloc")
	if _, err := s.cfg.Deployments.Get(r.Context(), id, 0, 0); err != nil {
		s.fail(w, err)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "exec", "cannot switch protocols: "+err.Error())
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+api.ExecProtocol+"\r\n\r\n"); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stdinR, stdinW := io.Pipe()
	resize := make(chan api.TermSize, 1)
	if req.TTY {
		req.Resize = resize
	}
	go func() {
		// Read the client's frames: stdin until its end, then only to
		// notice the client going away.
		defer cancel()
		for {
			typ, payload, err := api.ReadFrame(brw.Reader)
			if err != nil {
				stdinW.CloseWithError(errors.New("the client went away"))
				return
			}
			switch typ {
			case api.FrameStdin:
				if _, err := stdinW.Write(payload); err != nil && !errors.Is(err, io.ErrClosedPipe) {
					return
				}
			case api.FrameStdinEOF:
				stdinW.Close()
			case api.FrameResize:
				sz := api.ResizeOf(payload)
				for sent := false; !sent; {
					select {
					case resize <- sz:
						sent = true
					default:
						select {
						case <-resize: // a newer size replaces one not taken yet
						default:
						}
					}
				}
			default:
				stdinW.CloseWithError(errors.New("unexpected frame from the client"))
				return
			}
		}
	}()
	var mu sync.Mutex
	var stdin io.Reader
	if req.Stdin {
		stdin = stdinR
	}
	code, err := ex.Exec(ctx, id, alloc, req, stdin, api.FrameWriter{W: conn, Typ: api.FrameStdout, Mu: &mu}, api.FrameWriter{W: conn, Typ: api.FrameStderr, Mu: &mu})
	stdinR.Close()
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Info("exec", "deployment_id", id, "allocation", alloc, "err", err)
		}
		msg := err.Error()
		if len(msg) > api.MaxFramePayload {
			msg = msg[:api.MaxFramePayload]
		}
		api.WriteFrame(conn, api.FrameError, []byte(msg))
		return
	}
	api.WriteFrame(conn, api.FrameExit, api.ExitPayload(code))
}

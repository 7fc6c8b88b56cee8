package cli

import (
	"context"
	"fmt"

	"github.com/dmsnet/dms/api"
)

// submit sends a deployment to the node. The request itself is not
// cancelled by Ctrl-C: once it is on its way only the node's answer tells
// whether the deployment exists, so a signal makes submit say it waits for
// that answer (a second Ctrl-C ends the process at once, see SignalContext)
// and the caller then reports what was submitted.
func (a *app) submit(c *api.Client, req api.DeployRequest) (*api.Deployment, error) {
	type result struct {
		d   *api.Deployment
		err error
	}
	if err := a.ctx.Err(); err != nil {
		return nil, err // interrupted before sending: nothing was submitted
	}
	ch := make(chan result, 1)
	go func() {
		d, err := c.Deploy(context.WithoutCancel(a.ctx), req)
		ch <- result{d, err}
	}()
	select {
	case r := <-ch:
		return r.d, r.err
	case <-a.ctx.Done():
		if in, ok := interruption(a.ctx); ok {
			fmt.Fprintf(a.stderr, "%v: waiting for the node to answer the submission (Ctrl-C again to quit without knowing)\n", in)
		}
		r := <-ch
		return r.d, r.err
	}
}

// notSubmitted turns the error of a step before the node accepted the
// deployment into "interrupted ...: nothing was submitted" when a signal
// caused it.
func (a *app) notSubmitted(err error) error {
	if in, ok := interruption(a.ctx); ok {
		return fmt.Errorf("%v: nothing was submitted", in)
	}
	return err
}

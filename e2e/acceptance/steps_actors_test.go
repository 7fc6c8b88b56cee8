package acceptance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/p2p"
)

// Steps of the actor runtime that the CLI cannot show: a peer speaking the
// wire protocol that sends one envelope twice, and a program relaying one
// signed invocation twice through the public API client.

// wireReplay sends, from a bare libp2p host with a key of its own, one
// envelope invoking behavior on target's node twice, and returns the two
// replies.
func (w *World) wireReplay(ctx context.Context, behavior, target string) (first, second *actor.Reply, err error) {
	n := netOf(w)
	addr := n.node(w.T, target).Addr(w.T)
	did := identity.DID(n.id(w.T, target, "did"))
	peer := n.id(w.T, target, "peer")
	key, err := identity.NewKey()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	host, err := p2p.New(ctx, p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, fmt.Errorf("libp2p host: %w", err)
	}
	defer host.Close()
	host.SetLinkHandler(func(actor.Link) {})
	if _, err := host.Connect(ctx, addr); err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	link, err := host.Link(ctx, peer)
	if err != nil {
		return nil, nil, fmt.Errorf("link to %s: %w", target, err)
	}
	inv, err := cap.Invoke(key, cap.InvocationParams{Audience: did, Command: behavior, Expiry: time.Now().Add(time.Minute), Args: cap.Bind(host.ID(), nil).Args()})
	if err != nil {
		return nil, nil, err
	}
	frame := actor.EncodeEnvelope(&actor.Envelope{
		Nonce: uint64(time.Now().UnixNano()), Expiry: time.Now().Add(time.Minute), WantReply: true,
		To:       actor.Handle{DID: did, Host: peer, Inbox: actor.RootInbox},
		From:     actor.Handle{DID: key.DID(), Host: host.ID(), Inbox: "replayer"},
		Behavior: behavior, Invocation: cap.BundleOf(inv, nil),
	})
	exchange := func() (*actor.Reply, error) {
		if err := link.Send(ctx, frame); err != nil {
			return nil, err
		}
		for {
			f, err := link.Recv()
			if err != nil {
				return nil, fmt.Errorf("receive the reply: %w", err)
			}
			if _, replies, _ := actor.DecodeFrame(f); len(replies) > 0 {
				return replies[0], nil
			}
		}
	}
	if first, err = exchange(); err != nil {
		return nil, nil, err
	}
	second, err = exchange()
	return first, second, err
}

// replay is what the two sends of one invocation got.
type replay struct {
	first, second error
	reply         *api.ActorReply
}

func actorSteps(sc *godog.ScenarioContext) {
	sc.Step(`^a peer speaking the wire protocol sends one envelope invoking "([^"]+)" to ([a-z]+) twice$`, func(ctx context.Context, behavior, target string) error {
		w := worldOf(ctx)
		first, second, err := w.wireReplay(ctx, behavior, target)
		if err != nil {
			return err
		}
		r := replay{reply: &api.ActorReply{}}
		if first.Err != nil {
			r.first = &api.Error{Code: string(first.Err.Code), Message: first.Err.Msg}
		}
		if second.Err != nil {
			r.second = &api.Error{Code: string(second.Err.Code), Message: second.Err.Msg}
		}
		w.vals["replay"] = r
		return nil
	})
	sc.Step(`^a program sends the same signed invocation of "([^"]+)" from ([a-z]+)'s user to ([a-z]+) twice through ([a-z]+)'s API$`, func(ctx context.Context, behavior, user, target, via string) error {
		w := worldOf(ctx)
		req := w.invocation(w.userKey(user), target, via, behavior)
		c := w.client(via)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var r replay
		r.reply, r.first = c.Invoke(ctx, req)
		_, r.second = c.Invoke(ctx, req)
		w.vals["replay"] = r
		return nil
	})
	sc.Step(`^the first is answered$`, func(ctx context.Context) error {
		r, ok := worldOf(ctx).vals["replay"].(replay)
		switch {
		case !ok:
			return errors.New("nothing was sent twice in this scenario")
		case r.first != nil:
			return fmt.Errorf("the first send: %v, want a reply", r.first)
		case r.reply == nil || r.reply.Error != nil:
			return fmt.Errorf("the first send got %+v, want a reply without error", r.reply)
		}
		return nil
	})
	sc.Step(`^the second is refused with "([^"]+)"$`, func(ctx context.Context, code string) error {
		r, _ := worldOf(ctx).vals["replay"].(replay)
		var ae *api.Error
		if !errors.As(r.second, &ae) || ae.Code != code {
			return fmt.Errorf("the second send: %v, want a refusal with the code %q", r.second, code)
		}
		return nil
	})
}

// dispatchSteps are the steps of remote dispatch: broadcasts.
func dispatchSteps(sc *godog.ScenarioContext) {
	sc.Step(`^([a-z]+) broadcasts "([^"]+)" on the topic "([^"]+)"$`, func(ctx context.Context, name, behavior, topic string) error {
		w := worldOf(ctx)
		w.vals["broadcast"] = [3]string{name, behavior, topic}
		return nil
	})
	sc.Step(`^replies come from `+names+`$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		b, ok := w.vals["broadcast"].([3]string)
		if !ok {
			return errors.New("nothing was broadcast in this scenario")
		}
		n := netOf(w)
		want := splitNames(list)
		var got map[string]bool
		var last string
		// A gossip mesh forms in about a second after a connection: until
		// then a broadcast may reach no one, so broadcast again.
		ok = eventually(20*time.Second, func() bool {
			var res api.BroadcastResult
			r := w.home(b[0]).Run(w.T, "-o", "json", "invoke", b[1], "--topic", b[2], "--timeout", "2s")
			last = r.String()
			if r.Code != 0 || jsonInto(r.Stdout, &res) != nil {
				return false
			}
			got = map[string]bool{}
			for _, rp := range res.Replies {
				if rp.Error == nil {
					got[rp.From.Host] = true
				}
			}
			for _, name := range want {
				if !got[n.id(w.T, name, "peer")] {
					return false
				}
			}
			return true
		})
		if !ok {
			return fmt.Errorf("within 20s no broadcast got a reply from each of %s; last: %s", strings.Join(want, ", "), last)
		}
		return nil
	})
}

package actor_test

import (
	"context"
	"fmt"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
)

// Two hosts on an in-memory network; Bob's node answers /public/hello.
// With libp2p, the Transport is a *p2p.Host and the authorizer internal/cap.
func Example() {
	ctx := context.Background()
	net := actor.NewMemNetwork()

	start := func() (*actor.System, *actor.Actor) {
		key, _ := identity.NewKey()
		host, _ := key.DID().PeerID()
		sys, _ := actor.NewSystem(actor.Config{
			Transport: net.Host(host),
			Auth:      actor.AllowAll{}, // the node uses a cap.Verifier
			Issuer:    actor.AllowAll{},
		})
		node, _ := sys.Spawn(key, actor.RootInbox, actor.SpawnOptions{})
		return sys, node
	}
	aliceSys, alice := start()
	bobSys, bob := start()
	defer aliceSys.Close(ctx)
	defer bobSys.Close(ctx)

	bob.AddBehavior("/public/hello", func(ctx context.Context, m *actor.Message) (any, error) {
		var req struct{ Name string }
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		return map[string]string{"greeting": "hello " + req.Name}, nil
	})

	var reply struct{ Greeting string }
	err := alice.Invoke(ctx, bob.Handle(), "/public/hello", map[string]string{"name": "alice"}, &reply)
	fmt.Println(reply.Greeting, err)

	// Failures come back typed, never as a silent timeout.
	err = alice.Invoke(ctx, bob.Handle(), "/public/nope", nil, nil)
	fmt.Println(err)
	// Output:
	// hello alice <nil>
	// unknown-behavior: root has no behavior /public/nope
}

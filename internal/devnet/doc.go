// Package devnet brings up networks of real dms nodes, step by step, and
// keeps the bookkeeping of `dms devnet`: the state file that records a
// local network and its detached node processes.
//
// # Steps
//
// Every network of nodes here (dms devnet's processes on loopback,
// e2etest's processes, featureenv's containers) is brought up with the
// same steps, over a small seam: a Runner runs the dms CLI for one node
// (a local process, docker exec…) and a Member is a started node (how to
// reach its API, whether it ended).
//
//	id, err := devnet.Init(ctx, devnet.LocalRunner(bin, home, env))  // dms init
//	err = devnet.Configure(home, devnet.NodeSettings(listen, apiListen, executors)...)
//	// ... start the node: a process, a container ...
//	c, self, err := devnet.WaitReady(ctx, member, 30*time.Second)     // its API answers
//	peers := []devnet.Peer{{Name: "node1", PeerID: self.PeerID, Addr: addr, API: c}, ...}
//	err = devnet.Mesh(ctx, peers, 15*time.Second)                     // every node connected to every other
//	res, err := devnet.MeshWith(ctx, peers, devnet.MeshOptions{       // the same, discovery first:
//		Timeout: 20 * time.Second, Grace: 5 * time.Second})          // dials only the pairs still apart after 5 s
//	err = devnet.TrustOperator(ctx, peers[1:], operatorDID)           // anchored for /dms
//	err = devnet.Onboard(ctx, peers, req, 0)
//
// Up runs them all for `dms devnet up`: homes in a directory, one
// detached `dms run` per node (up to MaxNodes, a few started at a time,
// LeanSettings from LeanNodes on), progress reported as Events, and on
// failure the started nodes stopped (UpError says what was cleaned up).
// Package scalebench measures a devnet that Up started.
// Probe and Down serve `dms devnet status` and `down`.
//
// # Bookkeeping
//
//	st := &devnet.State{Dir: dir, Nodes: []devnet.Node{{Name: "node1", Home: home}}}
//	p, err := devnet.Start(devnet.Command{Path: bin, Args: args, Env: env, Log: logPath})
//	st.Nodes[0].PID = p.PID
//	err = st.Save()                     // dir/devnet.json, written atomically
//	st, err = devnet.Load(dir)          // fs.ErrNotExist when there is no devnet
//	alive := devnet.Alive(st.Nodes[0].PID, st.Nodes[0].Home)
//	stopped, err := devnet.Stop(ctx, procs, 20*time.Second)
//
// Alive recognises a node by its pid and its command line (which names its
// home), so that a pid reused by an unrelated process is never signalled.
//
// The package prints nothing and knows no command line: the CLI turns
// its Events into progress lines and its results into tables.
package devnet

package api

// Behavior names: the actor behaviors a node offers, which are also the UCAN
// commands an invoker needs. `dms invoke BEHAVIOR --to PEER` calls them.
const (
	// Public behaviors need only a valid self-signed invocation.
	BehaviorHello  = "/public/hello"  // → Hello
	BehaviorStatus = "/public/status" // → Status

	// Node administration: the node's owner, or whom the owner delegated to.
	BehaviorPeersList    = "/dms/node/peers/list"    // → []Peer
	BehaviorPeersSelf    = "/dms/node/peers/self"    // → Node
	BehaviorPeersConnect = "/dms/node/peers/connect" // ConnectRequest → ConnectResult
	BehaviorPeersPing    = "/dms/node/peers/ping"    // PingRequest → PingResult

	// Onboarding: dedicate this machine's resources, withdraw them, see
	// the accounting. Anchoring /dms/node/onboarding grants all three.
	BehaviorOnboard       = "/dms/node/onboarding/onboard"  // OnboardRequest → OnboardResult
	BehaviorOffboard      = "/dms/node/onboarding/offboard" // → OffboardResult
	BehaviorOnboardStatus = "/dms/node/onboarding/status"   // → ResourceSnapshot

	// Resources: the accounting's three amounts, read-only.
	BehaviorResourcesOnboarded = "/dms/node/resources/onboarded" // → Resources (zero when not onboarded)
	BehaviorResourcesAllocated = "/dms/node/resources/allocated" // → Resources held by allocations
	BehaviorResourcesFree      = "/dms/node/resources/free"      // → Resources: onboarded − allocated − reserved
)

// Topics every node's root actor subscribes to (gossip; the p2p layer
// prefixes them with the protocol prefix).
const (
	// TopicHello carries /public/hello broadcasts: every node answers,
	// which lists the nodes reachable by gossip.
	TopicHello = "hello"
)

// Hello is the answer of /public/hello.
type Hello struct {
	Hello   string `json:"hello"` // the invoker's DID, greeted
	PeerID  string `json:"peer_id"`
	DID     string `json:"did"`
	Version string `json:"version"`
}

// Status is the answer of /public/status.
type Status struct {
	PeerID    string            `json:"peer_id"`
	DID       string            `json:"did"`
	Version   string            `json:"version"`
	UptimeSec float64           `json:"uptime_sec"`
	Peers     int               `json:"peers"`
	Actors    map[string]uint64 `json:"actor_stats,omitempty"`
	// Subnet is the node's side of the deployments' subnets; absent
	// when the node runs none.
	Subnet *SubnetStatus `json:"subnet,omitempty"`
}

// SubnetStatus counts what a provider's subnet data path did: packets
// forwarded to other providers, delivered to its allocations, and
// dropped, by reason ("spoofed": a source address not the sending
// peer's; "no-route", "gateway", "queue-full", "unauthorized",
// "malformed", "bad-datagram": a datagram that fails to open or is
// replayed).
type SubnetStatus struct {
	Deployments int    `json:"deployments"` // with a routing table here
	Attached    int    `json:"attached"`    // allocations with an interface
	Forwarded   uint64 `json:"forwarded"`
	Datagrams   uint64 `json:"datagrams,omitempty"` // of Forwarded, those sent as UDP datagrams (subnet.datagrams)
	Delivered   uint64 `json:"delivered"`
	// Sessions counts the datagram sessions set up (first keys, rekeys,
	// and fresh ones for a peer that lost its own); Fallbacks the times a
	// peer's UDP path went quiet and its packets went back to the stream;
	// ReadErrors the failed reads of the datagram socket.
	Sessions   uint64            `json:"sessions,omitempty"`
	Fallbacks  uint64            `json:"fallbacks,omitempty"`
	ReadErrors uint64            `json:"read_errors,omitempty"`
	Dropped    map[string]uint64 `json:"dropped,omitempty"`
}

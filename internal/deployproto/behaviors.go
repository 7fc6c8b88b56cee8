package deployproto

import "strings"

// The behaviors of the protocol; each name is also the UCAN command that
// authorizes it.
const (
	BehaviorRequest  = "/dms/deployment/request"  // BidRequest → BidReply, on the provider node
	BehaviorPlan     = "/dms/deployment/plan"     // BidRequest → BidReply, a dry run: nothing reserved, the bid unsigned (dms plan)
	BehaviorCommit   = "/dms/deployment/commit"   // CommitRequest → CommitReply, on the provider node
	BehaviorRevert   = "/dms/deployment/revert"   // RevertRequest → struct{}, on the provider node
	BehaviorRelease  = "/dms/deployment/release"  // ReleaseRequest (one way, broadcast on TopicDeployments): a bid round's unused reservations
	BehaviorReport   = "/dms/deployment/report"   // Report (one way), on the orchestrator
	BehaviorArtifact = "/dms/deployment/artifact" // ArtifactRequest → ArtifactChunk, on the orchestrator

	BehaviorStart  = "/dms/allocation/start"  // StartRequest → struct{}
	BehaviorStop   = "/dms/allocation/stop"   // StopRequest → struct{}
	BehaviorLogs   = "/dms/allocation/logs"   // LogsRequest → LogsChunk
	BehaviorStatus = "/dms/allocation/status" // struct{} → AllocationStatus

	BehaviorDependency = "/dms/allocation/dependency" // DependencyNotice → struct{}
	BehaviorAdopt      = "/dms/allocation/adopt"      // AdoptRequest → struct{}

	BehaviorReplicate = "/dms/deployment/replicate" // ReplicateRequest → ReplicateReply, on a standby orchestrator's node
	BehaviorShutdown  = "/dms/deployment/shutdown"  // ShutdownRequest → struct{}, on the orchestrator: a standby forwards a shutdown

	// BehaviorSpans is answered by a node with the spans it recorded of a
	// deployment's trace, for the deployment's orchestrator only (dms
	// deployment trace; the node is both sides: internal/node/trace.go).
	BehaviorSpans = "/dms/deployment/spans"

	// TopicDeployments carries bid requests and the releases of their
	// unused reservations.
	TopicDeployments = "deployments"

	// CmdDeployment and CmdAllocation are the command prefixes a user
	// delegates to let a node deploy on its behalf (package api exports
	// the same values for the CLI; a test keeps them equal).
	CmdDeployment = "/dms/deployment"
	CmdAllocation = "/dms/allocation"
)

// FeatureVMKernel is not an executor but a feature of one that requests
// ask for and offers list beside "vm": the provider's vm executor has a
// default kernel (executor.vm.kernel), so it runs vm allocations that
// bring none.
const FeatureVMKernel = "vm/kernel"

// FeatureSubnet is offered by a provider that can put allocations on a
// deployment's subnet (BehaviorSubnet, a TUN in the allocation); the
// requests of a deployment whose ensemble has network.subnet ask for it.
const FeatureSubnet = "subnet"

// IsFeature says whether an entry of an offer's or request's executors
// is a feature (FeatureVMKernel, FeatureSubnet), not an executor.
func IsFeature(e string) bool { return e == FeatureSubnet || strings.Contains(e, "/") }

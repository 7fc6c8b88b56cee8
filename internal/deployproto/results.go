package deployproto

import (
	"time"

	"github.com/dmsnet/dms/internal/ensemble"
)

// BehaviorResults serves the out volumes of a deployment's allocations on
// a provider node: their list, and, for a local out volume (live, or kept
// after its allocation ended), the manifest of its files and their bytes
// in chunks. ResultsRequest → ResultsReply. Only the deployment's
// orchestrator or the user who deployed it may ask; anyone else gets an
// *actor.Error of code actor.CodeDenied.
const BehaviorResults = "/dms/deployment/results"

// ResultsOp is what a ResultsRequest asks for.
type ResultsOp string

// The results operations.
const (
	// ResultsList lists the out volumes of the deployment's allocations on
	// the provider (Allocation narrows it to one): ResultsReply.Volumes.
	ResultsList ResultsOp = "list"
	// ResultsManifest lists the files of one local out volume:
	// ResultsReply.Manifest, in pages that fit an envelope: Offset is the
	// index of the first file, ResultsReply.NextFile the index to ask for
	// next (0 once the list is complete). Manifest.Bytes is the whole
	// volume's.
	ResultsManifest ResultsOp = "manifest"
	// ResultsChunk reads Length bytes (at most MaxResultsChunk) of Path at
	// Offset: ResultsReply.Data (shorter at the end of the file).
	ResultsChunk ResultsOp = "chunk"
)

// MaxResultsChunk bounds one chunk of a result file.
const MaxResultsChunk = 1 << 20

// ResultsRequest asks a provider for the results of a deployment.
type ResultsRequest struct {
	Deployment string    `json:"deployment"`
	Allocation string    `json:"allocation,omitempty"` // the allocation's name in the ensemble
	Volume     string    `json:"volume,omitempty"`
	Op         ResultsOp `json:"op"`
	Path       string    `json:"path,omitempty"` // chunk: a file of the manifest (slash-separated)
	Offset     int64     `json:"offset,omitempty"`
	Length     int       `json:"length,omitempty"`
}

// ResultsReply answers a ResultsRequest; the field of its Op is set.
type ResultsReply struct {
	Volumes  []ResultVolume `json:"volumes,omitempty"`
	Manifest *ResultFiles   `json:"manifest,omitempty"`
	Data     []byte         `json:"data,omitempty"`
	NextFile int64          `json:"next_file,omitempty"`
}

// MaxManifestPage bounds the bytes of the paths in one page of a
// manifest.
const MaxManifestPage = 1 << 20

// The states of a result volume.
const (
	ResultLive      = "live"      // local: the allocation still holds the volume
	ResultKept      = "kept"      // local: kept on the provider after the allocation ended, until Expires
	ResultPending   = "pending"   // s3: nothing uploaded yet
	ResultUploading = "uploading" // s3: an upload is under way
	ResultUploaded  = "uploaded"  // s3: the last upload finished
	ResultFailed    = "failed"    // s3: the last upload failed (Error says why)
)

// ResultVolume is one out volume of an allocation: where its data is. It
// never carries credentials.
type ResultVolume struct {
	Allocation string              `json:"allocation"`
	Volume     string              `json:"volume"`
	Kind       ensemble.VolumeKind `json:"kind"`
	Mode       ensemble.VolumeMode `json:"mode"`
	State      string              `json:"state"`
	Error      string              `json:"error,omitempty"`
	// Ready says whether the volume holds the allocation's final outputs
	// now (it has ended and, for s3, uploaded them); Reason says why not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Kept volumes: when they are removed.
	Expires time.Time `json:"expires,omitzero"`
	// s3: where the objects went (the prefix actually used).
	Bucket   string `json:"bucket,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Objects  int    `json:"objects,omitempty"`
	Bytes    int64  `json:"bytes,omitempty"`
}

// ResultFiles is the manifest of a local out volume: every regular file,
// with its size, SHA-256 and mode.
type ResultFiles struct {
	Files []ResultFile `json:"files"`
	Bytes int64        `json:"bytes"`
}

// ResultFile is one file of a result volume.
type ResultFile struct {
	Path   string `json:"path"` // slash-separated, relative to the volume
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	Mode   uint32 `json:"mode"`
}

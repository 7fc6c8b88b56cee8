package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Onboarding and resources: the wire types of GET /api/v1/resources, POST
// /api/v1/onboard, /offboard and /benchmark, and of the behaviors
// /dms/node/onboarding/* and /dms/node/resources/*.
//
// Amounts are written as the node's accounting writes them: CPU in cores
// (1.5), memory, disk and VRAM in bytes, prices in units per hour. Requests
// accept the human forms too (Amount).

// CodeRefused is the code of a request the node's state refuses (409): an
// onboarding above what the machine has or below what is allocated,
// offboarding while allocations run, offboarding when not onboarded. The
// message says why, with the amounts.
const CodeRefused = "refused"

// Amount is a quantity in a request: a JSON number or a string in the human
// form ("512MiB", "2GB", "1.5", "500m", "cpu=0.5,ram=0.1"). The node parses
// it; a malformed one is a bad request.
type Amount string

// UnmarshalJSON accepts a string or a number.
func (a *Amount) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*a = Amount(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("amount %s: want a number or a string such as \"512MiB\"", data)
	}
	*a = Amount(n.String())
	return nil
}

// OnboardRequest is the body of POST /api/v1/onboard and the payload of
// /dms/node/onboarding/onboard. On the first onboarding a field left out is
// zero; when already onboarded, a field left out keeps its value, so
// {"ram": "4GiB"} changes only the memory.
type OnboardRequest struct {
	CPU  *Amount `json:"cpu,omitempty"`  // cores: 1, 1.5, "500m"
	RAM  *Amount `json:"ram,omitempty"`  // bytes, or "512MiB", "2GB"
	Disk *Amount `json:"disk,omitempty"` // bytes, or "10GiB"
	// GPUs is the full list of dedicated cards, each "INDEX" (all of its
	// memory) or "INDEX:VRAM" ("0:8GiB"); an empty list removes every card.
	GPUs *[]string `json:"gpus,omitempty"`
	// Price per core-hour ("0.5"), or unit prices
	// ("cpu=0.5,ram=0.1,disk=0.01,gpu=2"; RAM and disk per GiB-hour).
	// Left out on the first onboarding: orchestrator.price from the node's
	// config.
	Price *Amount `json:"price,omitempty"`
	// NoBenchmark skips the benchmark this onboarding would run; the
	// caller runs POST /api/v1/benchmark itself (the CLI does, to show
	// progress) when the result says BenchmarkDue.
	NoBenchmark bool `json:"no_benchmark,omitempty"`
}

// OnboardResult answers an onboarding.
type OnboardResult struct {
	Onboarded Onboarding `json:"onboarded"`
	// Benchmarked is true when this onboarding ran the machine benchmark
	// (the first time, or after a benchmark version change).
	Benchmarked bool `json:"benchmarked"`
	// BenchmarkDue is true when there are still no scores of the node's
	// benchmark version (NoBenchmark, or the run failed).
	BenchmarkDue bool    `json:"benchmark_due"`
	Benchmark    *Scores `json:"benchmark"` // the current scores, null if none
	// Warning says what went wrong that did not undo the onboarding
	// (a failed benchmark).
	Warning string `json:"warning,omitempty"`
}

// OffboardResult answers POST /api/v1/offboard: what was withdrawn.
type OffboardResult struct {
	Offboarded Onboarding `json:"offboarded"`
}

// BenchmarkRequest is the body of POST /api/v1/benchmark.
type BenchmarkRequest struct {
	// BudgetMS bounds the run (1000–60000); 0: the node's
	// resources.benchmark_budget.
	BudgetMS int64 `json:"budget_ms,omitempty"`
}

// BenchmarkResult answers POST /api/v1/benchmark: the scores, now stored in
// the node, and where the disk was measured.
type BenchmarkResult struct {
	Scores
	DataDir string `json:"data_dir"`
}

// Resources is an amount of every kind of resource.
type Resources struct {
	CPU   float64          `json:"cpu"`  // cores
	RAM   uint64           `json:"ram"`  // bytes
	Disk  uint64           `json:"disk"` // bytes
	GPUs  []GPU            `json:"gpus,omitempty"`
	Extra map[string]int64 `json:"extra,omitempty"`
}

// GPU is one graphics card, numbered as the machine numbers them.
type GPU struct {
	Index  int    `json:"index"`
	Vendor string `json:"vendor,omitempty"` // nvidia, amd, intel
	Model  string `json:"model,omitempty"`
	VRAM   uint64 `json:"vram"` // bytes
}

// Price is what the provider charges per hour and unit: per core, per GiB
// of RAM, per GiB of disk, per GPU.
type Price struct {
	CPU  float64 `json:"cpu,omitempty"`
	RAM  float64 `json:"ram,omitempty"`
	Disk float64 `json:"disk,omitempty"`
	GPU  float64 `json:"gpu,omitempty"`
}

// Onboarding is what the owner dedicated to the network.
type Onboarding struct {
	Resources Resources `json:"resources"`
	Price     Price     `json:"price"`
	Since     time.Time `json:"since"`   // first onboarded
	Updated   time.Time `json:"updated"` // last changed
}

// Allocation is what a running allocation holds.
type Allocation struct {
	ID        string    `json:"id"`
	Resources Resources `json:"resources"`
	Since     time.Time `json:"since"`
}

// Reservation is what a bid holds until it is committed or expires.
type Reservation struct {
	ID        string    `json:"id"`
	Resources Resources `json:"resources"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
}

// Location is where the machine is, as its owner configured it.
type Location struct {
	Continent string `json:"continent,omitempty"`
	Country   string `json:"country,omitempty"`
	// Subdivision is the ISO 3166-2 state or province: US-CA.
	Subdivision string `json:"subdivision,omitempty"`
	City        string `json:"city,omitempty"`
}

// Machine is what the node detected on its machine.
type Machine struct {
	CPU       MachineCPU    `json:"cpu"`
	RAM       MachineRAM    `json:"ram"`
	Disk      MachineDisk   `json:"disk"`
	GPUs      []MachineGPU  `json:"gpus"`
	OS        MachineOS     `json:"os"`
	Executors []string      `json:"executors"` // usable here: docker, vm, wasm
	Docker    MachineDocker `json:"docker"`
	KVM       bool          `json:"kvm"`
	QEMU      string        `json:"qemu,omitempty"`
	Location  Location      `json:"location"`
	Warnings  []string      `json:"warnings,omitempty"`
}

// MachineCPU describes the processor.
type MachineCPU struct {
	Vendor  string   `json:"vendor"`
	Model   string   `json:"model"`
	Cores   int      `json:"cores"`
	Threads int      `json:"threads"`
	MHz     float64  `json:"mhz"`
	Arch    string   `json:"arch"`
	Flags   []string `json:"flags,omitempty"`
	Quota   float64  `json:"quota,omitempty"` // cgroup CPU limit in cores, 0: none
}

// MachineRAM describes the memory (bytes).
type MachineRAM struct {
	Total     uint64 `json:"total"`
	Available uint64 `json:"available"`
	Limit     uint64 `json:"limit,omitempty"` // cgroup limit, 0: none
}

// MachineDisk describes the filesystem of the data directory (bytes).
type MachineDisk struct {
	Path  string `json:"path"`
	Total uint64 `json:"total"`
	Free  uint64 `json:"free"`
}

// MachineGPU is a detected graphics card.
type MachineGPU struct {
	GPU
	UUID        string `json:"uuid,omitempty"`
	PCI         string `json:"pci,omitempty"`
	VendorIndex int    `json:"vendor_index"`
	Source      string `json:"source"` // nvidia-smi, rocm-smi or sysfs
}

// MachineOS describes the operating system.
type MachineOS struct {
	Name   string `json:"name"`
	Kernel string `json:"kernel"`
	Type   string `json:"type"`
}

// MachineDocker says whether the Docker engine answered.
type MachineDocker struct {
	Socket     string `json:"socket"`
	Reachable  bool   `json:"reachable"`
	APIVersion string `json:"api_version,omitempty"`
}

// Scores are the results of one machine benchmark run.
type Scores struct {
	CPUSingle     float64 `json:"cpu_single"` // points; 1000 = one core of the reference machine
	CPUMulti      float64 `json:"cpu_multi"`
	MemoryMBps    float64 `json:"memory_mbps"`
	DiskWriteMBps float64 `json:"disk_write_mbps"`
	DiskReadMBps  float64 `json:"disk_read_mbps"`
	FsyncP50      float64 `json:"fsync_p50_us"`

	Version   int        `json:"version"` // benchmark version
	Time      time.Time  `json:"time"`
	Seconds   float64    `json:"seconds"`
	Threads   int        `json:"threads"`
	FsyncP99  float64    `json:"fsync_p99_us"`
	DiskBytes uint64     `json:"disk_bytes"`
	GPUs      []GPUProbe `json:"gpus,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
}

// GPUProbe is what the benchmark's GPU probe found for one card.
type GPUProbe struct {
	Index       int     `json:"index"`
	OK          bool    `json:"ok"`
	Error       string  `json:"error,omitempty"`
	LatencyMS   float64 `json:"latency_ms"`
	MaxClockMHz float64 `json:"max_clock_mhz,omitempty"`
	UsePercent  float64 `json:"use_percent,omitempty"`
}

// ResourceSnapshot is the node's resource accounting at one instant: GET
// /api/v1/resources, `dms resources -o json`, /dms/node/onboarding/status.
// Free is onboarded − allocated − reserved; Available (capacity − reserve)
// is the most an onboarding may dedicate.
type ResourceSnapshot struct {
	Time         time.Time     `json:"time"`
	Machine      Machine       `json:"machine"`
	Capacity     Resources     `json:"capacity"`
	Reserve      Resources     `json:"reserve"`
	Available    Resources     `json:"available"`
	Onboarded    *Onboarding   `json:"onboarded"` // null when not onboarded
	Allocated    Resources     `json:"allocated"`
	Reserved     Resources     `json:"reserved"`
	Free         Resources     `json:"free"`
	Allocations  []Allocation  `json:"allocations"`
	Reservations []Reservation `json:"reservations"`
	Benchmark    *Scores       `json:"benchmark"` // null before the first run
	// BenchmarkDue is true when there are no scores of the node's
	// benchmark version: the next onboarding runs the benchmark.
	BenchmarkDue bool `json:"benchmark_due"`
	// BenchmarkBudgetMS bounds a benchmark run of this node.
	BenchmarkBudgetMS int64 `json:"benchmark_budget_ms"`
	// Ledger is this node's account in its ledger (contracts settled as
	// requester and as provider); absent on a node that keeps none.
	Ledger *LedgerBalance `json:"ledger,omitempty"`
}

// Resources returns the node's resource accounting.
func (c *Client) Resources(ctx context.Context) (*ResourceSnapshot, error) {
	var s ResourceSnapshot
	return &s, c.do(ctx, http.MethodGet, "/api/v1/resources", nil, &s)
}

// Onboard dedicates resources to the network, or changes the dedication.
// A refusal is an *Error with code CodeRefused whose message says how much
// is available. It may take the benchmark budget (10 s) on the first
// onboarding.
func (c *Client) Onboard(ctx context.Context, req OnboardRequest) (*OnboardResult, error) {
	var r OnboardResult
	return &r, c.do(ctx, http.MethodPost, "/api/v1/onboard", req, &r)
}

// Offboard withdraws everything from the network.
func (c *Client) Offboard(ctx context.Context) (*OffboardResult, error) {
	var r OffboardResult
	return &r, c.do(ctx, http.MethodPost, "/api/v1/offboard", struct{}{}, &r)
}

// Benchmark runs the machine benchmark in the node and stores its scores.
func (c *Client) Benchmark(ctx context.Context, req BenchmarkRequest) (*BenchmarkResult, error) {
	var r BenchmarkResult
	return &r, c.do(ctx, http.MethodPost, "/api/v1/benchmark", req, &r)
}

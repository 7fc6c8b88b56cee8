package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/match"
)

// The Nomad job is read in its API JSON form (what `nomad job run -output
// job.nomad.hcl` and `nomad job inspect` print; a job file in HCL is first
// converted to it, see nomad_hcl.go) with the small structs below, not with
// github.com/hashicorp/nomad/api, whose module pulls in much of Nomad. Only
// the fields the translation maps are declared; every other non-empty field
// is reported as not carried over, except those the Nomad server fills in
// (serverFields).

type nomadJob struct {
	ID          string
	Name        string
	Type        string
	Region      string
	Namespace   string
	Priority    *int
	Datacenters []string
	Meta        map[string]string
	TaskGroups  []nomadGroup
}

type nomadGroup struct {
	Name          string
	Count         *int
	Tasks         []nomadTask
	Networks      []nomadNetwork
	Services      []nomadService
	RestartPolicy *nomadRestart
	EphemeralDisk *struct{ SizeMB *int }
}

type nomadTask struct {
	Name          string
	Driver        string
	Config        map[string]any
	Env           map[string]string
	Resources     *nomadResources
	Services      []nomadService
	RestartPolicy *nomadRestart
	Lifecycle     *struct {
		Hook    string
		Sidecar bool
	}
}

type nomadResources struct {
	CPU         *int
	Cores       *int
	MemoryMB    *int
	MemoryMaxMB *int
	DiskMB      *int
	Networks    []nomadNetwork
	Devices     []struct {
		Name  string
		Count *int
	}
}

type nomadNetwork struct {
	Mode          string
	ReservedPorts []nomadPort
	DynamicPorts  []nomadPort
}

type nomadPort struct {
	Label string
	Value int
	To    int
}

type nomadService struct {
	Name      string
	PortLabel string
	TaskName  string
	Checks    []nomadCheck
}

type nomadCheck struct {
	Name      string
	Type      string
	Command   string
	Args      []string
	Path      string
	PortLabel string
	Protocol  string
	Interval  int64 // nanoseconds
	Timeout   int64 // nanoseconds
}

type nomadRestart struct {
	Attempts *int
	Delay    *int64 // nanoseconds
	Interval *int64
	Mode     string
}

// Nomad's defaults for a task without resources.
const (
	nomadDefaultCPUMHz   = 100
	nomadDefaultMemoryMB = 300
	mhzPerCore           = 1000 // how CPU in MHz is read as cores
)

// serverFields are the fields of a job that the Nomad server fills in
// (nomad job inspect prints them): they say nothing of what to run.
var serverFields = []string{
	"CreateIndex", "ModifyIndex", "JobModifyIndex", "Status", "StatusDescription", "SubmitTime",
	"Version", "VersionTag", "Stable", "Stop", "Dispatched", "DispatchIdempotencyToken", "ParentID",
	"NomadTokenID", "VaultToken", "ConsulToken", "Payload",
}

// FromNomad translates a Nomad job: a job file in HCL2 (job "x" { group
// ... }), or the job in its API JSON form: {"Job": {...}}, as `nomad job run
// -output` prints it, or the bare job object, as `nomad job inspect` does.
// Each task group becomes a node; each docker task an allocation. A
// periodic or parameterized job is translated with a Dropped warning: the
// ensemble runs once.
func FromNomad(data []byte) (*ensemble.Spec, []Warning, error) {
	var ws warnings
	var raw map[string]any
	var file *hclConv // the HCL file, nil for JSON
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		if err := json.Unmarshal(trimmed, &raw); err != nil {
			return nil, nil, fmt.Errorf("parse nomad job: %w", jsonError(trimmed, err))
		}
		if j, ok := raw["Job"]; ok {
			m, ok := j.(map[string]any)
			if !ok {
				return nil, nil, errors.New("parse nomad job: Job is not an object")
			}
			raw = m
		} else if _, ok := raw["job"]; ok {
			return nil, nil, errors.New("parse nomad job: this is the HCL-in-JSON form; want the job file in HCL, or the API form (nomad job run -output job.nomad.hcl > job.json)")
		}
	} else {
		var err error
		if raw, file, err = nomadHCL(data); err != nil {
			return nil, nil, fmt.Errorf("parse nomad job: %w", err)
		}
	}
	for _, k := range serverFields {
		delete(raw, k)
	}
	nomadDefaults(raw)
	jobJSON, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parse nomad job: %w", err)
	}
	var job nomadJob
	if err := json.Unmarshal(jobJSON, &job); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			return nil, nil, fmt.Errorf("parse nomad job: %s: want %s, not %s", typ.Field, jsonKind(typ.Type), article(typ.Value))
		}
		return nil, nil, fmt.Errorf("parse nomad job: %w", err)
	}
	if len(job.TaskGroups) == 0 {
		return nil, nil, errors.New("parse nomad job: no task groups")
	}
	if p, ok := raw["Periodic"].(map[string]any); ok && !empty(p) && p["Enabled"] != false {
		spec, _ := p["Spec"].(string)
		if specs := stringList(p["Specs"]); spec == "" && len(specs) > 0 {
			spec = strings.Join(specs, ", ")
		}
		ws.drop("Job.Periodic", "a periodic job's schedule (%s) is not carried over: the ensemble would run the job once", spec)
	}
	delete(raw, "Periodic")
	if p, ok := raw["ParameterizedJob"].(map[string]any); ok && p != nil {
		ws.drop("Job.ParameterizedJob", "a parameterized job is not carried over: the ensemble would run it once, at deploy time, with no payload or meta, instead of on each dispatch")
	}
	delete(raw, "ParameterizedJob")

	// Defaults that carry nothing.
	if dcs, _ := raw["Datacenters"].([]any); len(dcs) == 1 && dcs[0] == "*" {
		delete(raw, "Datacenters")
	}
	if raw["Region"] == "global" {
		delete(raw, "Region")
	}
	if raw["Namespace"] == "default" {
		delete(raw, "Namespace")
	}
	if p, _ := raw["Priority"].(float64); p == 50 {
		delete(raw, "Priority")
	}
	ws.lost("Job", raw, "ID", "Name", "Type", "Meta", "TaskGroups")

	s := &ensemble.Spec{Allocations: map[string]ensemble.Allocation{}, Nodes: map[string]ensemble.Node{}}
	if len(job.Meta) > 0 || job.ID != "" {
		s.Metadata = map[string]string{}
		for k, v := range job.Meta {
			s.Metadata[k] = v
		}
		if job.ID != "" {
			s.Metadata["nomad-job"] = job.ID
		}
	}
	service := true
	switch job.Type {
	case "", "service":
	case "batch":
		service = false
	case "system", "sysbatch":
		ws.add("Job.Type", "a %s job runs on every client; one copy is deployed", job.Type)
		service = job.Type == "system"
	default:
		ws.add("Job.Type", "unknown type %q, taken as service", job.Type)
	}

	// Tasks keep their name when it is unique in the job.
	count := map[string]int{}
	for _, g := range job.TaskGroups {
		for _, t := range g.Tasks {
			count[t.Name]++
		}
	}
	nodes, allocs := newNamer(), newNamer()
	rawGroups, _ := raw["TaskGroups"].([]any)
	for gi, g := range job.TaskGroups {
		gp := "TaskGroups." + g.Name
		var rawGroup map[string]any
		if gi < len(rawGroups) {
			rawGroup, _ = rawGroups[gi].(map[string]any)
		}
		names := nomadGroupAllocations(s, g, rawGroup, gp, service, count, allocs, &ws)
		if len(names) > 0 {
			s.Nodes[nodes.name(&ws, gp, g.Name)] = ensemble.Node{Allocations: names}
		}
	}
	if len(s.Nodes) == 0 {
		s.Nodes = nil
	}
	spec, out, err := finish(s, ws)
	if file != nil {
		file.place(out)
	}
	return spec, out, err
}

// nomadGroupAllocations adds the allocations of one task group.
func nomadGroupAllocations(s *ensemble.Spec, g nomadGroup, raw map[string]any, gp string, service bool, count map[string]int, n *namer, ws *warnings) []string {
	if g.Count != nil && *g.Count != 1 {
		ws.add(gp+".Count", "%d copies are not carried over: one copy is deployed", *g.Count)
	}
	nomadDefaults(raw)
	ws.lost(gp, raw, "Name", "Count", "Tasks", "Networks", "Services", "RestartPolicy", "EphemeralDisk")

	// Ports by label: the container port, and the public (host) port.
	ports := map[string]ensemble.Port{}
	var labels []string
	networks := g.Networks
	for _, t := range g.Tasks {
		if t.Resources != nil {
			networks = append(networks, t.Resources.Networks...)
		}
	}
	bridge := false
	for _, net := range networks {
		bridge = bridge || net.Mode == "bridge"
		for _, p := range net.ReservedPorts {
			to := p.To
			if to <= 0 {
				to = p.Value
			}
			ports[p.Label] = ensemble.Port{Port: to, Protocol: ensemble.TCP, Public: p.Value}
			labels = append(labels, p.Label)
		}
		for _, p := range net.DynamicPorts {
			if p.To <= 0 {
				ws.add(gp+".Networks", "dynamic port %s has no To (the port inside the task); not carried over", p.Label)
				continue
			}
			ports[p.Label] = ensemble.Port{Port: p.To, Protocol: ensemble.TCP}
			labels = append(labels, p.Label)
		}
	}
	usedLabels := map[string]bool{}

	type entry struct {
		task nomadTask
		name string
		a    ensemble.Allocation
	}
	var entries []entry
	rawTasks, _ := raw["Tasks"].([]any)
	for ti, t := range g.Tasks {
		tp := gp + ".Tasks." + t.Name
		var rawTask map[string]any
		if ti < len(rawTasks) {
			rawTask, _ = rawTasks[ti].(map[string]any)
		}
		if lc := t.Lifecycle; lc != nil && lc.Hook != "" && lc.Hook != "prestart" && lc.Hook != "poststart" {
			ws.drop(tp+".Lifecycle", "hook %s is not carried over; the task is dropped", lc.Hook)
			continue
		}
		a, ok := nomadTaskAllocation(t, rawTask, tp, service, ws)
		if !ok {
			continue
		}
		// Ports the task names in its config.
		if list, ok := t.Config["ports"].([]any); ok {
			for _, l := range list {
				label, _ := l.(string)
				if p, ok := ports[label]; ok {
					a.Ports = append(a.Ports, p)
					usedLabels[label] = true
				} else {
					ws.add(tp+".Config.ports", "no port labelled %q in the group network; not carried over", label)
				}
			}
		}
		src := t.Name
		if count[t.Name] > 1 {
			src = g.Name + "-" + t.Name
		}
		entries = append(entries, entry{t, n.name(ws, tp, src), a})
	}
	if bridge && len(entries) == 1 {
		for _, l := range labels {
			if !usedLabels[l] {
				entries[0].a.Ports = append(entries[0].a.Ports, ports[l])
				usedLabels[l] = true
			}
		}
	}
	for _, l := range labels {
		if !usedLabels[l] {
			ws.add(gp+".Networks", "port %s is used by no task; not carried over", l)
		}
	}

	// EphemeralDisk is the group's scratch space: it goes to the first task.
	if g.EphemeralDisk != nil && g.EphemeralDisk.SizeMB != nil && *g.EphemeralDisk.SizeMB > 0 && len(entries) > 0 {
		entries[0].a.Resources.Disk = match.Bytes(*g.EphemeralDisk.SizeMB) << 20
		if len(entries) > 1 {
			ws.add(gp+".EphemeralDisk", "the group's disk is reserved for its first task, %s", entries[0].name)
		}
	}

	// Restart policy: the task's, else the group's.
	for i := range entries {
		rp := entries[i].task.RestartPolicy
		path := gp + ".Tasks." + entries[i].task.Name + ".RestartPolicy"
		if rp == nil {
			rp, path = g.RestartPolicy, gp+".RestartPolicy"
		}
		nomadRestartPolicy(&entries[i].a, rp, path, ws)
	}

	// Services: their checks become healthchecks.
	byTask := map[string]int{}
	for i, e := range entries {
		byTask[e.task.Name] = i
	}
	checkFor := func(sv nomadService, task int, sp string) {
		if task < 0 {
			ws.add(sp, "no task to check; not carried over")
			return
		}
		nomadCheckHealth(&entries[task].a, sv, ports, sp, ws)
	}
	for _, sv := range g.Services {
		sp := gp + ".Services." + sv.Name
		task := -1
		if i, ok := byTask[sv.TaskName]; ok {
			task = i
		} else if len(entries) == 1 {
			task = 0
		} else {
			for i, e := range entries {
				for _, p := range e.a.Ports {
					if p == ports[sv.PortLabel] && sv.PortLabel != "" {
						task = i
					}
				}
			}
		}
		checkFor(sv, task, sp)
	}
	for i, e := range entries {
		for _, sv := range e.task.Services {
			checkFor(sv, i, gp+".Tasks."+e.task.Name+".Services."+sv.Name)
		}
	}

	// Lifecycle: prestart tasks run before the others, poststart after.
	var pre, main []string
	for _, e := range entries {
		if lc := e.task.Lifecycle; lc != nil && lc.Hook == "prestart" {
			pre = append(pre, e.name)
		} else if lc == nil || lc.Hook == "" {
			main = append(main, e.name)
		}
	}
	var names []string
	for _, e := range entries {
		a := e.a
		switch lc := e.task.Lifecycle; {
		case lc == nil || lc.Hook == "":
			a.DependsOn = append(a.DependsOn, pre...)
		case lc.Hook == "prestart":
			if !lc.Sidecar {
				a.Type = ensemble.Task
				a.Healthcheck = nil
				if a.Restart.Policy == ensemble.Always {
					a.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: a.Restart.MaxRestarts, Backoff: a.Restart.Backoff}
				}
			}
		default: // poststart
			a.DependsOn = append(a.DependsOn, main...)
		}
		s.Allocations[e.name] = a
		names = append(names, e.name)
	}
	// Dependencies on dropped tasks go.
	for _, name := range names {
		a := s.Allocations[name]
		kept := a.DependsOn[:0]
		for _, d := range a.DependsOn {
			if contains(names, d) {
				kept = append(kept, d)
			}
		}
		a.DependsOn = kept
		if len(a.DependsOn) == 0 {
			a.DependsOn = nil
		}
		s.Allocations[name] = a
	}
	return names
}

// nomadTaskAllocation maps one task; false when its driver cannot be
// carried over.
func nomadTaskAllocation(t nomadTask, raw map[string]any, tp string, service bool, ws *warnings) (ensemble.Allocation, bool) {
	a := ensemble.Allocation{Type: ensemble.Task, Executor: ensemble.Docker}
	if service {
		a.Type = ensemble.Service
	}
	switch t.Driver {
	case "docker":
	case "podman":
		ws.add(tp+".Driver", "podman is run as docker")
	default:
		ws.drop(tp, "driver %q is not carried over (only docker and podman); the task is dropped", t.Driver)
		return a, false
	}
	nomadDefaults(raw)
	ws.lost(tp, raw, "Name", "Driver", "Config", "Env", "Resources", "Services", "RestartPolicy", "Lifecycle", "Templates", "Artifacts")
	nomadFiles(raw, tp, ws)
	image, _ := t.Config["image"].(string)
	if image == "" {
		ws.drop(tp+".Config.image", "missing; the task is dropped")
		return a, false
	}
	e := &a.Execution
	e.Image = image
	e.Entrypoint = stringList(t.Config["entrypoint"])
	args := stringList(t.Config["args"])
	if cmd, _ := t.Config["command"].(string); cmd != "" {
		e.Cmd = append([]string{cmd}, args...)
	} else {
		e.Cmd = args
	}
	e.Workdir, _ = t.Config["work_dir"].(string)
	ws.lost(tp+".Config", t.Config, "image", "entrypoint", "args", "command", "work_dir", "ports")
	for _, k := range mapkeys.Sorted(t.Env) {
		v := t.Env[k]
		if strings.Contains(v, "${") {
			ws.add(tp+".Env."+k, "Nomad variables in %q are not interpolated", v)
		}
		if e.Env == nil {
			e.Env = ensemble.Env{}
		}
		e.Env[k] = v
	}
	for _, s := range []string{e.Image, e.Workdir} {
		if strings.Contains(s, "${") {
			ws.add(tp+".Config", "Nomad variables in %q are not interpolated", s)
		}
	}

	res := &a.Resources
	r := t.Resources
	if r == nil {
		r = &nomadResources{}
	}
	switch {
	case r.Cores != nil && *r.Cores > 0:
		res.CPU = match.MilliCPU(*r.Cores) * 1000
	case r.CPU != nil && *r.CPU > 0:
		res.CPU = match.MilliCPU(*r.CPU * 1000 / mhzPerCore)
		if res.CPU == 0 {
			res.CPU = 1
		}
		ws.add(tp+".Resources.CPU", "%d MHz taken as %s cores (%d MHz per core)", *r.CPU, res.CPU, mhzPerCore)
	default:
		res.CPU = nomadDefaultCPUMHz * 1000 / mhzPerCore
		ws.add(tp+".Resources", "no CPU: Nomad's default, %d MHz, taken as %s cores", nomadDefaultCPUMHz, res.CPU)
	}
	if r.MemoryMB != nil && *r.MemoryMB > 0 {
		res.RAM = match.Bytes(*r.MemoryMB) << 20
	} else {
		res.RAM = nomadDefaultMemoryMB << 20
		ws.add(tp+".Resources", "no memory: Nomad's default, %d MB, is reserved", nomadDefaultMemoryMB)
	}
	if r.MemoryMaxMB != nil && *r.MemoryMaxMB > 0 {
		ws.add(tp+".Resources.MemoryMaxMB", "not carried over: memory is reserved, not oversubscribed")
	}
	if r.DiskMB != nil && *r.DiskMB > 0 {
		res.Disk = match.Bytes(*r.DiskMB) << 20
	}
	for i, d := range r.Devices {
		dp := fmt.Sprintf("%s.Resources.Devices[%d]", tp, i)
		parts := strings.SplitN(d.Name, "/", 3)
		var vendor, model string
		switch {
		case len(parts) == 1 && parts[0] == "gpu":
			vendor = "nvidia"
		case len(parts) >= 2 && parts[1] == "gpu":
			vendor = parts[0]
			if len(parts) == 3 {
				model = parts[2]
			}
		}
		if vendor != "nvidia" && vendor != "amd" && vendor != "intel" {
			ws.add(dp, "device %q is not carried over (GPUs of nvidia, amd or intel only)", d.Name)
			continue
		}
		n := 1
		if d.Count != nil && *d.Count > 0 {
			n = min(*d.Count, 1024)
		}
		res.GPUs = append(res.GPUs, ensemble.GPU{Vendor: vendor, Model: model, Count: n})
	}
	return a, true
}

// jsonKind says what a Go type wants, in words.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	}
	return "an object"
}

// article puts a or an before what encoding/json calls a value's kind.
func article(kind string) string {
	if strings.HasPrefix(kind, "a") || strings.HasPrefix(kind, "o") {
		return "an " + kind
	}
	return "a " + kind
}

// nomadDefaults removes the defaults nomad job inspect prints in a job,
// group or task: they say nothing the user asked for.
func nomadDefaults(raw map[string]any) {
	for k, v := range map[string]any{
		"KillTimeout": float64(5 * time.Second),
		"LogConfig":   map[string]any{"MaxFiles": float64(10), "MaxFileSizeMB": float64(10), "Disabled": false},
		"NodePool":    "default",
	} {
		if reflect.DeepEqual(raw[k], v) {
			delete(raw, k)
		}
	}
	// The Consul block of a job that names no Consul cluster of its own.
	if c, ok := raw["Consul"].(map[string]any); ok {
		plain := true
		for _, v := range c {
			plain = plain && (empty(v) || v == "default")
		}
		if plain {
			delete(raw, "Consul")
		}
	}
}

// nomadFiles warns about the files a task gets from Nomad (templates it
// renders, artifacts it downloads): they are not shipped.
func nomadFiles(raw map[string]any, tp string, ws *warnings) {
	for _, what := range []struct{ key, dest, src, noun string }{
		{"Templates", "DestPath", "SourcePath", "template"},
		{"Artifacts", "RelativeDest", "GetterSource", "artifact"},
	} {
		key := what.key
		list, _ := raw[key].([]any)
		for i, x := range list {
			m, _ := x.(map[string]any)
			dest, _ := m[what.dest].(string)
			src, _ := m[what.src].(string)
			switch {
			case key == "Templates" && src == "":
				ws.file(fmt.Sprintf("%s.%s[%d]", tp, key, i), "the %s rendered to %s is not shipped: the task starts without the file", what.noun, dest)
			default:
				ws.file(fmt.Sprintf("%s.%s[%d]", tp, key, i), "the %s %s (to %s) is not shipped: the task starts without it", what.noun, src, dest)
			}
		}
	}
}

func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		} else {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

func nomadRestartPolicy(a *ensemble.Allocation, rp *nomadRestart, path string, ws *warnings) {
	if rp == nil {
		return
	}
	attempts := 0
	if rp.Attempts != nil {
		attempts = *rp.Attempts
	}
	if attempts <= 0 {
		a.Restart = ensemble.Restart{Policy: ensemble.Never}
		return
	}
	a.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: min(attempts, 1000)}
	if a.Type == ensemble.Service {
		a.Restart.Policy = ensemble.Always
	}
	if rp.Delay != nil && *rp.Delay > 0 {
		a.Restart.Backoff = time.Duration(*rp.Delay)
	}
	if rp.Interval != nil && *rp.Interval > 0 {
		ws.add(path+".Interval", "not carried over: max_restarts counts restarts on one provider")
	}
}

// nomadCheckHealth turns the first check of a service into the task's
// healthcheck.
func nomadCheckHealth(a *ensemble.Allocation, sv nomadService, ports map[string]ensemble.Port, sp string, ws *warnings) {
	ws.add(sp, "service registration is not carried over: today allocations cannot find each other by name (see docs/ensemble.md#networking-today)")
	if len(sv.Checks) == 0 {
		return
	}
	if a.Type != ensemble.Service {
		ws.add(sp+".Checks", "not carried over: a task has no healthcheck")
		return
	}
	if a.Healthcheck != nil {
		ws.add(sp+".Checks", "not carried over: the allocation already has a healthcheck")
		return
	}
	for i := range sv.Checks[1:] {
		ws.add(fmt.Sprintf("%s.Checks[%d]", sp, i+1), "only the first check is carried over")
	}
	c := sv.Checks[0]
	cp := sp + ".Checks[0]"
	h := &ensemble.Healthcheck{Interval: time.Duration(c.Interval), Timeout: time.Duration(c.Timeout)}
	if h.Interval <= 0 {
		h.Interval = 0
	}
	if h.Timeout <= 0 || h.Interval > 0 && h.Timeout > h.Interval {
		h.Timeout = 0
	}
	label := c.PortLabel
	if label == "" {
		label = sv.PortLabel
	}
	port, hasPort := ports[label]
	switch c.Type {
	case "http":
		if !hasPort {
			ws.add(cp, "no port %q; not carried over", label)
			return
		}
		path := c.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		h.HTTP = &ensemble.HTTPProbe{Port: port.Port, Path: path}
		if c.Protocol == "https" {
			ws.add(cp+".Protocol", "https is not carried over (a plain HTTP GET is made)")
		}
	case "tcp":
		if !hasPort {
			ws.add(cp, "no port %q; not carried over", label)
			return
		}
		h.TCP = &ensemble.TCPProbe{Port: port.Port}
	case "script":
		if c.Command == "" {
			ws.add(cp, "a script check without a command is not carried over")
			return
		}
		h.Exec = append([]string{c.Command}, c.Args...)
	default:
		ws.add(cp, "check type %q is not carried over", c.Type)
		return
	}
	if h.HTTP != nil || h.TCP != nil {
		declared := false
		for _, p := range a.Ports {
			declared = declared || p.Port == port.Port && p.Protocol == ensemble.TCP
		}
		if !declared {
			a.Ports = append(a.Ports, ensemble.Port{Port: port.Port, Protocol: ensemble.TCP})
		}
	}
	a.Healthcheck = h
}

package translate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/match"
)

// FromCompose translates a docker-compose file with no variables set for
// ${VAR} interpolation (their defaults apply, else they are empty).
func FromCompose(data []byte) (*ensemble.Spec, []Warning, error) {
	return FromComposeEnv(data, nil)
}

// FromComposeEnv translates a docker-compose file. env holds the variables
// for ${VAR} interpolation, as docker compose takes them from the shell.
//
// Every service becomes a docker allocation, all on one node (compose runs
// a project on one host). See docs/ensemble.md for the whole mapping.
func FromComposeEnv(data []byte, env map[string]string) (*ensemble.Spec, []Warning, error) {
	return fromCompose("compose.yaml", data, env)
}

// fromCompose translates a compose file; name is the file's name in
// compose-go's messages.
func fromCompose(name string, data []byte, env map[string]string) (*ensemble.Spec, []Warning, error) {
	var ws warnings
	var model map[string]any
	if err := yaml.Unmarshal(data, &model); err != nil {
		return nil, nil, fmt.Errorf("parse compose file: %w", err)
	}
	if model == nil {
		return nil, nil, errors.New("parse compose file: empty")
	}
	stripFileFeatures(model, &ws)

	project, err := loadCompose(name, data, model, env, &ws)
	if err != nil {
		return nil, ws, err
	}
	s := &ensemble.Spec{Allocations: map[string]ensemble.Allocation{}}
	if name := project.Name; name != "" {
		s.Metadata = map[string]string{"compose-project": name}
	}

	n := newNamer()
	names := map[string]string{} // compose service -> allocation
	for _, svc := range mapkeys.Sorted(project.Services) {
		names[svc] = n.name(&ws, "services."+svc, svc)
	}
	// A service another waits for with service_completed_successfully runs
	// to completion: it is a task.
	tasks := map[string]bool{}
	for _, svc := range project.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				tasks[dep] = true
			}
		}
	}
	volumeUsers := map[string][]string{}
	var skipped []string
	for _, svc := range mapkeys.Sorted(project.Services) {
		a, ok := composeService(project, svc, names, tasks[svc], volumeUsers, &ws)
		if !ok {
			skipped = append(skipped, svc)
			continue
		}
		s.Allocations[names[svc]] = a
	}
	for name, a := range s.Allocations {
		a.DependsOn = slices.DeleteFunc(a.DependsOn, func(d string) bool {
			for _, sk := range skipped {
				if names[sk] == d {
					ws.add("services."+name+".depends_on", "dropped the dependency on %s, which was not carried over", sk)
					return true
				}
			}
			return false
		})
		s.Allocations[name] = a
	}
	for _, vol := range mapkeys.Sorted(volumeUsers) {
		if users := volumeUsers[vol]; len(users) > 1 {
			ws.add("volumes."+vol, "shared by %s in compose; each allocation gets a volume of its own", strings.Join(users, ", "))
		}
	}
	for _, v := range mapkeys.Sorted(project.Volumes) {
		if vol := project.Volumes[v]; vol.Driver != "" && vol.Driver != "local" || len(vol.DriverOpts) > 0 || bool(vol.External) {
			ws.add("volumes."+v, "driver, options and external volumes are not carried over (a local volume is used)")
		}
	}
	// Compose's services share a network and find each other by service
	// name: the deployment's subnet does the same (<name>.internal, and the
	// bare name through its search domain).
	if len(s.Allocations) > 1 {
		s.Network.Subnet = true
	}
	for _, net := range mapkeys.Sorted(project.Networks) {
		if net != "default" {
			ws.add("networks."+net, "not carried over: the allocations of an ensemble share one subnet (network.subnet), where each reaches the others by name (see docs/ensemble.md#networking)")
		}
	}
	for _, k := range mapkeys.Sorted(project.Secrets) {
		if f := project.Secrets[k].File; f != "" {
			ws.file("secrets."+k, "the file %s is not shipped: services that use the secret start without it", f)
		} else {
			ws.add("secrets."+k, "not carried over")
		}
	}
	for _, k := range mapkeys.Sorted(project.Configs) {
		if f := project.Configs[k].File; f != "" {
			ws.file("configs."+k, "the file %s is not shipped: services that use the config start without it", f)
		} else {
			ws.add("configs."+k, "not carried over")
		}
	}
	for _, k := range mapkeys.Sorted(project.Models) {
		ws.add("models."+k, "not carried over")
	}

	node := label(project.Name)
	if project.Name == "" {
		node = "main"
	}
	allocs := mapkeys.Sorted(s.Allocations)
	if len(allocs) > 0 {
		s.Nodes = map[string]ensemble.Node{node: {Allocations: allocs}}
	}
	return finish(s, ws)
}

// stripFileFeatures removes what would make compose-go read files, with a
// warning each.
func stripFileFeatures(model map[string]any, ws *warnings) {
	delete(model, "version") // obsolete; compose-go would log about it
	if _, ok := model["include"]; ok {
		ws.add("include", "not carried over: included files are not read (translate each one)")
		delete(model, "include")
	}
	services, _ := model["services"].(map[string]any)
	for _, name := range mapkeys.Sorted(services) {
		svc, _ := services[name].(map[string]any)
		if svc == nil {
			continue
		}
		p := "services." + name
		for _, k := range []string{"env_file", "label_file"} {
			if _, ok := svc[k]; ok {
				ws.add(join(p, k), "not carried over: files are not read (put the variables in environment)")
				delete(svc, k)
			}
		}
		if ext, ok := svc["extends"].(map[string]any); ok {
			if _, ok := ext["file"]; ok {
				ws.add(p+".extends", "not carried over: extends from another file is not read")
				delete(svc, "extends")
			}
		}
	}
}

// loadCompose runs compose-go on the model, from memory.
func loadCompose(file string, data []byte, model map[string]any, env map[string]string, ws *warnings) (project *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			project, err = nil, fmt.Errorf("load compose file: compose-go failed on it: %v", r)
		}
	}()
	name, _ := model["name"].(string)
	name = loader.NormalizeProjectName(name)
	loadName := name
	if loadName == "" {
		loadName = "compose" // compose-go needs one; not reported
	}
	missing := map[string]bool{}
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		if !ok && !missing[k] {
			missing[k] = true
		}
		return v, ok
	}
	details := types.ConfigDetails{
		WorkingDir:  "/",
		ConfigFiles: []types.ConfigFile{{Filename: file, Config: model}},
		Environment: types.Mapping{},
	}
	project, err = loader.LoadWithContext(context.Background(), details,
		func(o *loader.Options) {
			o.SetProjectName(loadName, true)
			o.SkipInclude = true
			o.SkipResolveEnvironment = true
			o.ResolvePaths = false
			o.SkipConsistencyCheck = true
			o.Interpolate.LookupValue = lookup
			o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
				return template.SubstituteWithOptions(s, m, template.WithoutLogging)
			}
		})
	if err != nil {
		return nil, fmt.Errorf("load compose file: %w", err)
	}
	// Variables with a default (${X:-d}) are looked up too: warn only about
	// those the file also uses without one.
	for _, k := range mapkeys.Sorted(missing) {
		if bare := regexp.MustCompile(`\$(\{` + regexp.QuoteMeta(k) + `\}|` + regexp.QuoteMeta(k) + `\b)`); bare.Match(data) {
			ws.add("", "variable %s is not set: replaced by an empty string", k)
		}
	}
	if name == "" {
		project.Name = ""
	}
	return project, nil
}

// handledServiceKeys are the service fields composeService maps; the others
// are reported as not carried over.
var handledServiceKeys = []string{
	"image", "build", "command", "entrypoint", "environment", "working_dir", "ports", "expose",
	"volumes", "healthcheck", "depends_on", "restart", "deploy", "cpus", "mem_limit", "gpus",
	"networks", "scale",
}

func composeService(p *types.Project, svc string, names map[string]string, task bool, volumeUsers map[string][]string, ws *warnings) (ensemble.Allocation, bool) {
	s := p.Services[svc]
	path := "services." + svc
	a := ensemble.Allocation{Type: ensemble.Service, Executor: ensemble.Docker}
	if task {
		a.Type = ensemble.Task
	}
	if s.Image == "" {
		ws.drop(path, "not carried over: it has no image (dms does not build images: build and push it, then set image)")
		return a, false
	}
	if s.Build != nil {
		ws.add(path+".build", "not carried over: the image %s is used as it is", s.Image)
	}
	a.Execution.Image = s.Image
	a.Execution.Cmd = []string(s.Command)
	a.Execution.Entrypoint = []string(s.Entrypoint)
	if s.Command != nil && len(s.Command) == 0 {
		ws.add(path+".command", "an empty command (clearing the image's) is not carried over")
	}
	if s.Entrypoint != nil && len(s.Entrypoint) == 0 {
		ws.add(path+".entrypoint", "an empty entrypoint (clearing the image's) is not carried over")
	}
	a.Execution.Workdir = s.WorkingDir
	for _, k := range mapkeys.Sorted(s.Environment) {
		v := s.Environment[k]
		if v == nil {
			ws.add(path+".environment."+k, "not carried over: no value (compose takes it from the host environment)")
			continue
		}
		if a.Execution.Env == nil {
			a.Execution.Env = ensemble.Env{}
		}
		a.Execution.Env[k] = *v
	}

	composePorts(&a, s, path, ws)
	composeVolumes(&a, s, path, volumeUsers, names[svc], ws)
	composeHealthcheck(&a, s, path, ws)
	for _, dep := range mapkeys.Sorted(s.DependsOn) {
		d := s.DependsOn[dep]
		target, ok := names[dep]
		if !ok {
			ws.add(path+".depends_on."+dep, "no such service; dropped")
			continue
		}
		a.DependsOn = append(a.DependsOn, target)
		if d.Restart {
			ws.add(path+".depends_on."+dep+".restart", "not carried over")
		}
		if !d.Required {
			ws.add(path+".depends_on."+dep+".required", "false is not carried over: the dependency is required")
		}
	}
	composeRestart(&a, s, path, ws)
	composeResources(&a, s, path, ws)

	var raw map[string]any
	if b, err := json.Marshal(s); err == nil {
		_ = json.Unmarshal(b, &raw)
	}
	ws.lost(path, raw, handledServiceKeys...)
	for _, net := range mapkeys.Sorted(s.Networks) {
		if net != "default" {
			ws.add(path+".networks."+net, "not carried over: the allocations of an ensemble share one network")
		}
	}
	return a, true
}

func composePorts(a *ensemble.Allocation, s types.ServiceConfig, path string, ws *warnings) {
	seen := map[string]bool{}
	add := func(pp string, port ensemble.Port) {
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if seen[key] {
			ws.add(pp, "%s is already mapped; only the first mapping is carried over", key)
			return
		}
		seen[key] = true
		a.Ports = append(a.Ports, port)
	}
	for i, cp := range s.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", path, i)
		proto := ensemble.Protocol(strings.ToLower(cp.Protocol))
		if proto == "" {
			proto = ensemble.TCP
		}
		if proto != ensemble.TCP && proto != ensemble.UDP {
			ws.add(pp, "protocol %s is not carried over (tcp or udp only)", cp.Protocol)
			continue
		}
		port := ensemble.Port{Port: int(cp.Target), Protocol: proto}
		if cp.Published != "" {
			pub, err := strconv.Atoi(cp.Published)
			if err != nil || pub < 1 || pub > 65535 {
				ws.add(pp+".published", "%q is not carried over (a single port only); the port is not published", cp.Published)
			} else {
				port.Public = pub
			}
		}
		if cp.HostIP != "" {
			ws.add(pp+".host_ip", "not carried over: public ports listen on the provider's address")
		}
		add(pp, port)
	}
	for i, e := range s.Expose {
		pp := fmt.Sprintf("%s.expose[%d]", path, i)
		num, proto, _ := strings.Cut(e, "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 {
			ws.add(pp, "%q is not carried over (a single port only)", e)
			continue
		}
		pr := ensemble.Protocol(strings.ToLower(proto))
		if pr == "" {
			pr = ensemble.TCP
		}
		if pr != ensemble.TCP && pr != ensemble.UDP {
			ws.add(pp, "protocol %s is not carried over", proto)
			continue
		}
		add(pp, ensemble.Port{Port: n, Protocol: pr})
	}
}

func composeVolumes(a *ensemble.Allocation, s types.ServiceConfig, path string, users map[string][]string, alloc string, ws *warnings) {
	n := newNamer()
	for i, v := range s.Volumes {
		vp := fmt.Sprintf("%s.volumes[%d]", path, i)
		switch v.Type {
		case types.VolumeTypeVolume:
			src := v.Source
			if src == "" {
				src = fmt.Sprintf("volume-%d", i+1)
			} else {
				users[src] = append(users[src], alloc)
			}
			var local warnings
			name := n.name(&local, vp, src)
			*ws = append(*ws, local...)
			if a.Volumes == nil {
				a.Volumes = map[string]ensemble.Volume{}
			}
			a.Volumes[name] = ensemble.Volume{Path: v.Target, ReadOnly: v.ReadOnly}
			if v.Volume != nil && (v.Volume.Subpath != "" || v.Volume.NoCopy) {
				ws.add(vp, "subpath and nocopy are not carried over")
			}
		case types.VolumeTypeBind:
			ws.file(vp, "%s (mounted at %s) is not shipped: bind mounts of host paths do not travel with the ensemble (build it into the image; use a local volume for outputs)", v.Source, v.Target)
		default:
			ws.add(vp, "not carried over: %s mounts are not supported", v.Type)
		}
	}
}

func composeHealthcheck(a *ensemble.Allocation, s types.ServiceConfig, path string, ws *warnings) {
	h := s.HealthCheck
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return
	}
	hp := path + ".healthcheck"
	if a.Type == ensemble.Task {
		ws.add(hp, "not carried over: the service runs to completion (a task has no healthcheck)")
		return
	}
	hc := &ensemble.Healthcheck{}
	switch h.Test[0] {
	case "CMD":
		hc.Exec = append([]string(nil), h.Test[1:]...)
	case "CMD-SHELL":
		hc.Exec = []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	default:
		ws.add(hp+".test", "%q is not carried over (want CMD or CMD-SHELL)", h.Test[0])
		return
	}
	if len(hc.Exec) == 0 {
		ws.add(hp+".test", "an empty command is not carried over")
		return
	}
	dur := func(d *types.Duration) time.Duration {
		if d == nil {
			return 0
		}
		return time.Duration(*d)
	}
	hc.Interval, hc.Timeout, hc.StartPeriod = dur(h.Interval), dur(h.Timeout), dur(h.StartPeriod)
	if hc.Interval > 0 && hc.Timeout > hc.Interval {
		ws.add(hp+".timeout", "%s is longer than the interval; cut to %s", hc.Timeout, hc.Interval)
		hc.Timeout = hc.Interval
	}
	if h.Retries != nil && *h.Retries > 0 {
		hc.Retries = int(min(*h.Retries, 1000))
	}
	if h.StartInterval != nil {
		ws.add(hp+".start_interval", "not carried over")
	}
	a.Healthcheck = hc
}

func composeRestart(a *ensemble.Allocation, s types.ServiceConfig, path string, ws *warnings) {
	r := &a.Restart
	switch policy, max, _ := strings.Cut(s.Restart, ":"); policy {
	case "":
	case types.RestartPolicyNo:
		r.Policy = ensemble.Never
	case types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
		r.Policy = ensemble.Always
	case types.RestartPolicyOnFailure:
		r.Policy = ensemble.OnFailure
		if n, err := strconv.Atoi(max); err == nil && n > 0 {
			r.MaxRestarts = n
		}
	default:
		ws.add(path+".restart", "%q is not carried over", s.Restart)
	}
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
		rp := s.Deploy.RestartPolicy
		switch rp.Condition {
		case "none":
			r.Policy = ensemble.Never
		case "on-failure":
			r.Policy = ensemble.OnFailure
		case "any", "":
			r.Policy = ensemble.Always
		}
		if rp.MaxAttempts != nil && *rp.MaxAttempts > 0 && r.Policy != ensemble.Never {
			r.MaxRestarts = int(min(*rp.MaxAttempts, 1000))
		}
		if rp.Delay != nil && r.Policy != ensemble.Never {
			r.Backoff = time.Duration(*rp.Delay)
		}
		if rp.Window != nil {
			ws.add(path+".deploy.restart_policy.window", "not carried over")
		}
	}
	if r.Policy == ensemble.Never {
		r.MaxRestarts, r.Backoff = 0, 0
	}
}

func composeResources(a *ensemble.Allocation, s types.ServiceConfig, path string, ws *warnings) {
	res := &a.Resources
	if s.CPUS > 0 {
		res.CPU = match.MilliCPU(float64(s.CPUS)*1000 + 0.5)
	}
	if s.MemLimit > 0 {
		res.RAM = match.Bytes(s.MemLimit)
	}
	gpus := s.Gpus
	if d := s.Deploy; d != nil {
		for _, lim := range []*types.Resource{d.Resources.Reservations, d.Resources.Limits} { // limits win
			if lim == nil {
				continue
			}
			if lim.NanoCPUs > 0 {
				res.CPU = match.MilliCPU(float64(lim.NanoCPUs)*1000 + 0.5)
			}
			if lim.MemoryBytes > 0 {
				res.RAM = match.Bytes(lim.MemoryBytes)
			}
			gpus = append(gpus, lim.Devices...)
			if lim.Pids > 0 || len(lim.GenericResources) > 0 {
				ws.add(path+".deploy.resources", "pids and generic resources are not carried over")
			}
		}
		if d.Replicas != nil && *d.Replicas != 1 {
			ws.add(path+".deploy.replicas", "%d replicas are not carried over: one copy is deployed", *d.Replicas)
		}
		var raw map[string]any
		if b, err := json.Marshal(d); err == nil {
			_ = json.Unmarshal(b, &raw)
		}
		ws.lost(path+".deploy", raw, "resources", "replicas", "restart_policy")
	}
	if s.Scale != nil && *s.Scale != 1 {
		ws.add(path+".scale", "%d copies are not carried over: one copy is deployed", *s.Scale)
	}
	for _, g := range gpus {
		if !slices.Contains(g.Capabilities, "gpu") && len(g.Capabilities) > 0 {
			ws.add(path+".deploy.resources", "devices with capabilities %v are not carried over", g.Capabilities)
			continue
		}
		vendor := strings.ToLower(g.Driver)
		if vendor == "" {
			vendor = "nvidia" // docker's only GPU driver
		}
		if vendor != "nvidia" && vendor != "amd" && vendor != "intel" {
			ws.add(path+".deploy.resources", "GPU driver %q is not carried over", g.Driver)
			continue
		}
		count := int(g.Count)
		if count <= 0 {
			ws.add(path+".deploy.resources", "GPU count %q is not carried over: one GPU is asked for", countText(int64(g.Count)))
			count = 1
		}
		res.GPUs = append(res.GPUs, ensemble.GPU{Vendor: vendor, Count: count})
	}
	if res.CPU == 0 || res.RAM == 0 {
		ws.add(path, "no CPU or memory limit: the defaults (1 CPU, 256MiB) are reserved for what is missing")
	}
}

func countText(n int64) string {
	if n < 0 {
		return "all"
	}
	return strconv.FormatInt(n, 10)
}

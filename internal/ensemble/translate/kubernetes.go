package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/match"
)

// maxDocuments bounds the documents of a Kubernetes file.
const maxDocuments = 1000

// workload is one Kubernetes object that runs pods, reduced to what the
// translation needs.
type workload struct {
	kind, name string
	path       string // Deployment/web
	meta       metav1.ObjectMeta
	pod        corev1.PodTemplateSpec
	task       bool   // runs to completion (Job, CronJob, a Pod that does not restart always)
	backoff    *int32 // Job backoffLimit
	deadline   *int64 // Job activeDeadlineSeconds
	replicas   *int32
	spec       any      // the workload's spec, for the fields not carried over
	handled    []string // the fields of spec the translation reads
}

// FromKubernetes translates Kubernetes manifests: one or more YAML (or
// JSON) documents, or a List. Pods, Jobs, CronJobs, Deployments,
// StatefulSets, ReplicaSets and DaemonSets are carried over; each becomes a
// node holding one allocation per container (init containers become tasks
// the containers depend on). Other kinds are skipped with a warning.
func FromKubernetes(data []byte) (*ensemble.Spec, []Warning, error) {
	var ws warnings
	docs, lines, err := splitYAML(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parse kubernetes manifests: %w", err)
	}
	var loads []workload
	for i, doc := range docs {
		ws2, w, err := decodeWorkloads(doc, fmt.Sprintf("document %d, line %d", i+1, lines[i]))
		ws = append(ws, ws2...)
		if err != nil {
			return nil, ws, err
		}
		loads = append(loads, w...)
	}
	s := &ensemble.Spec{Allocations: map[string]ensemble.Allocation{}, Nodes: map[string]ensemble.Node{}}
	nodes, allocs := newNamer(), newNamer()
	var deadline int64
	for _, w := range loads {
		node := nodes.name(&ws, w.path+".metadata.name", w.name)
		names := k8sWorkload(s, w, allocs, &ws)
		if len(names) > 0 {
			s.Nodes[node] = ensemble.Node{Allocations: names}
		}
		if w.deadline != nil && *w.deadline > 0 {
			if deadline > 0 && deadline != *w.deadline {
				ws.add(w.path+".spec.activeDeadlineSeconds", "the ensemble has one execution timeout: the longest deadline is used")
			}
			deadline = max(deadline, *w.deadline)
		}
	}
	if deadline > 0 {
		s.Timeouts.Execution = time.Duration(min(deadline, int64(1<<62)/int64(time.Second))) * time.Second
	}
	if len(s.Nodes) == 0 {
		s.Nodes = nil
	}
	return finish(s, ws)
}

// splitYAML splits a multi-document YAML stream into documents (re-encoded
// one by one for sigs.k8s.io/yaml, which reads one), with the line each
// starts at in data.
func splitYAML(data []byte) ([][]byte, []int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	var lines []int
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if len(docs) >= maxDocuments {
			return nil, nil, fmt.Errorf("more than %d documents", maxDocuments)
		}
		if len(n.Content) == 0 || n.Content[0].ShortTag() == "!!null" {
			continue // an empty document (a trailing ---)
		}
		b, err := yaml.Marshal(&n)
		if err != nil {
			return nil, nil, err
		}
		docs = append(docs, b)
		lines = append(lines, n.Content[0].Line)
	}
	if len(docs) == 0 {
		return nil, nil, errors.New("no documents")
	}
	return docs, lines, nil
}

// decodeWorkloads decodes one document into the workloads it holds.
func decodeWorkloads(doc []byte, where string) (ws warnings, out []workload, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: cannot decode it: %v", where, r)
		}
	}()
	var tm metav1.TypeMeta
	if err := k8syaml.Unmarshal(doc, &tm); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	dec := func(v any) error {
		if err := k8syaml.Unmarshal(doc, v); err != nil {
			return fmt.Errorf("%s (%s): %w", where, tm.Kind, err)
		}
		return nil
	}
	switch tm.Kind {
	case "List":
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := dec(&l); err != nil {
			return nil, nil, err
		}
		for i, item := range l.Items {
			w2, items, err := decodeWorkloads(item, fmt.Sprintf("%s item %d", where, i+1))
			ws = append(ws, w2...)
			if err != nil {
				return ws, nil, err
			}
			out = append(out, items...)
		}
		return ws, out, nil
	case "Pod":
		var o corev1.Pod
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		w := newWorkload("Pod", o.ObjectMeta, corev1.PodTemplateSpec{Spec: o.Spec}, nil)
		rp := o.Spec.RestartPolicy
		w.task = rp == corev1.RestartPolicyNever || rp == corev1.RestartPolicyOnFailure
		return nil, []workload{w}, nil
	case "Job":
		var o batchv1.Job
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		return nil, []workload{jobWorkload("Job", o.ObjectMeta, o.Spec)}, nil
	case "CronJob":
		var o batchv1.CronJob
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		w := jobWorkload("CronJob", o.ObjectMeta, o.Spec.JobTemplate.Spec)
		ws.drop("CronJob/"+o.Name+".spec.schedule", "a CronJob's schedule (%s) is not carried over: the ensemble would run the job once", o.Spec.Schedule)
		return ws, []workload{w}, nil
	case "Deployment":
		var o appsv1.Deployment
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		return nil, []workload{serviceWorkload("Deployment", o.ObjectMeta, o.Spec.Template, o.Spec.Replicas, o.Spec, "replicas", "template", "selector")}, nil
	case "StatefulSet":
		var o appsv1.StatefulSet
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		return nil, []workload{serviceWorkload("StatefulSet", o.ObjectMeta, o.Spec.Template, o.Spec.Replicas, o.Spec, "replicas", "template", "selector", "serviceName")}, nil
	case "ReplicaSet":
		var o appsv1.ReplicaSet
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		return nil, []workload{serviceWorkload("ReplicaSet", o.ObjectMeta, o.Spec.Template, o.Spec.Replicas, o.Spec, "replicas", "template", "selector")}, nil
	case "DaemonSet":
		var o appsv1.DaemonSet
		if err := dec(&o); err != nil {
			return nil, nil, err
		}
		w := serviceWorkload("DaemonSet", o.ObjectMeta, o.Spec.Template, nil, o.Spec, "template", "selector")
		ws.add(w.path, "a daemon set runs on every machine; one copy is deployed")
		return ws, []workload{w}, nil
	case "":
		return nil, nil, fmt.Errorf("%s: no kind", where)
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = dec(&meta)
	ws.add(tm.Kind+"/"+meta.Metadata.Name, "kind %s is not carried over", tm.Kind)
	return ws, nil, nil
}

func jobWorkload(kind string, meta metav1.ObjectMeta, spec batchv1.JobSpec) workload {
	w := newWorkload(kind, meta, spec.Template, spec, "template", "backoffLimit", "activeDeadlineSeconds", "selector", "manualSelector")
	w.task, w.backoff, w.deadline = true, spec.BackoffLimit, spec.ActiveDeadlineSeconds
	return w
}

func serviceWorkload(kind string, meta metav1.ObjectMeta, pod corev1.PodTemplateSpec, replicas *int32, spec any, handled ...string) workload {
	w := newWorkload(kind, meta, pod, spec, handled...)
	w.replicas = replicas
	return w
}

func newWorkload(kind string, meta metav1.ObjectMeta, pod corev1.PodTemplateSpec, spec any, handled ...string) workload {
	name := meta.Name
	if name == "" {
		name = strings.TrimRight(meta.GenerateName, "-")
	}
	if name == "" {
		name = strings.ToLower(kind)
	}
	return workload{kind: kind, name: name, path: kind + "/" + name, meta: meta, pod: pod, spec: spec, handled: handled}
}

// toMap turns a typed object into its JSON map, for the generic "not
// carried over" warnings.
func toMap(v any) map[string]any {
	var m map[string]any
	if b, err := json.Marshal(v); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// k8sWorkload adds the allocations of one workload to s and returns their
// names.
func k8sWorkload(s *ensemble.Spec, w workload, n *namer, ws *warnings) []string {
	ws.lost(w.path+".metadata", toMap(w.meta), "name", "generateName", "labels", "creationTimestamp")
	pp := w.path + ".spec.template.spec"
	if w.kind == "Pod" {
		pp = w.path + ".spec"
	} else {
		ws.lost(w.path+".spec.template.metadata", toMap(w.pod.ObjectMeta), "labels", "creationTimestamp")
	}
	if w.spec != nil {
		spec := toMap(w.spec)
		for _, k := range []string{"completions", "parallelism"} {
			if v, ok := spec[k].(float64); ok && v > 1 {
				ws.add(w.path+".spec."+k, "%v is not carried over: the job runs once", v)
			}
			delete(spec, k)
		}
		ws.lost(w.path+".spec", spec, w.handled...)
	}
	if w.replicas != nil && *w.replicas != 1 {
		ws.add(w.path+".spec.replicas", "%d replicas are not carried over: one copy is deployed", *w.replicas)
	}
	ps := w.pod.Spec
	ws.lost(pp, toMap(ps), "containers", "initContainers", "restartPolicy", "volumes")

	volumes := map[string]corev1.Volume{}
	for i, v := range ps.Volumes {
		volumes[v.Name] = v
		switch {
		case v.EmptyDir != nil:
		case v.ConfigMap != nil || v.Secret != nil || v.HostPath != nil || v.Projected != nil || v.DownwardAPI != nil:
			ws.file(fmt.Sprintf("%s.volumes[%d]", pp, i), "%s volume %q is not shipped: its files do not travel with the ensemble (the containers that mount it start without them)", volumeKind(v), v.Name)
		default:
			ws.add(fmt.Sprintf("%s.volumes[%d]", pp, i), "%s volume %q is not carried over (only emptyDir, as a local volume)", volumeKind(v), v.Name)
		}
	}

	restart := ensemble.Restart{Policy: ensemble.Always}
	if w.task {
		restart.Policy = ensemble.Never
		if ps.RestartPolicy == corev1.RestartPolicyOnFailure {
			restart.Policy = ensemble.OnFailure
		}
		if w.kind == "Job" || w.kind == "CronJob" {
			limit := int32(6) // Kubernetes' default backoffLimit
			if w.backoff != nil {
				limit = *w.backoff
			}
			restart = ensemble.Restart{Policy: ensemble.Never}
			if limit > 0 {
				restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: int(limit)}
			}
		}
	}

	if len(ps.InitContainers)+len(ps.Containers) > 1 {
		s.Network.Subnet = true
		ws.add(pp+".containers", "the containers of a pod share localhost; in the ensemble they are allocations on one node, which reach each other by name on the deployment's subnet (<name>.internal), not by localhost (see docs/ensemble.md#networking)")
	}
	// The only container of a workload takes the workload's name; others,
	// and init containers, are named <workload>-<container>.
	allocName := func(path, c string, init bool) string {
		if !init && len(ps.Containers) == 1 {
			return n.name(ws, path, w.name)
		}
		var local warnings // "renamed web-app to ..." says nothing here
		name := n.name(&local, path, w.name+"-"+c)
		if name != label(w.name+"-"+c) {
			*ws = append(*ws, local...)
		}
		return name
	}
	var names, inits []string
	for i, c := range ps.InitContainers {
		cp := fmt.Sprintf("%s.initContainers[%d]", pp, i)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		a, ok := k8sContainer(c, cp, !sidecar, volumes, ws)
		if !ok {
			continue
		}
		a.Restart = ensemble.Restart{Policy: ensemble.Never}
		if sidecar {
			a.Restart = ensemble.Restart{Policy: ensemble.Always}
		}
		if len(inits) > 0 {
			a.DependsOn = []string{inits[len(inits)-1]} // init containers run one after the other
		}
		name := allocName(cp+".name", c.Name, true)
		s.Allocations[name] = a
		names = append(names, name)
		inits = append(inits, name)
	}
	for i, c := range ps.Containers {
		cp := fmt.Sprintf("%s.containers[%d]", pp, i)
		a, ok := k8sContainer(c, cp, w.task, volumes, ws)
		if !ok {
			continue
		}
		a.Restart = restart
		if len(inits) > 0 {
			a.DependsOn = []string{inits[len(inits)-1]}
		}
		name := allocName(cp+".name", c.Name, false)
		s.Allocations[name] = a
		names = append(names, name)
	}
	return names
}

// volumeKind names the source of a pod volume: configMap, secret, ...
func volumeKind(v corev1.Volume) string {
	for _, k := range mapkeys.Sorted(toMap(v.VolumeSource)) {
		return k
	}
	return "an unknown"
}

var gpuResources = map[corev1.ResourceName]string{
	"nvidia.com/gpu":     "nvidia",
	"amd.com/gpu":        "amd",
	"gpu.intel.com/i915": "intel",
	"gpu.intel.com/xe":   "intel",
}

// k8sContainer maps one container; task says whether it runs to
// completion.
func k8sContainer(c corev1.Container, cp string, task bool, volumes map[string]corev1.Volume, ws *warnings) (ensemble.Allocation, bool) {
	a := ensemble.Allocation{Type: ensemble.Service, Executor: ensemble.Docker}
	if task {
		a.Type = ensemble.Task
	}
	if c.Image == "" {
		ws.drop(cp, "not carried over: no image")
		return a, false
	}
	ws.lost(cp, toMap(c), "name", "image", "command", "args", "workingDir", "ports", "env", "resources", "volumeMounts",
		"livenessProbe", "readinessProbe", "startupProbe", "imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy", "restartPolicy")
	e := &a.Execution
	e.Image, e.Entrypoint, e.Cmd, e.Workdir = c.Image, c.Command, c.Args, c.WorkingDir
	for i, env := range c.Env {
		if env.ValueFrom != nil {
			ws.add(fmt.Sprintf("%s.env[%d]", cp, i), "%s: valueFrom is not carried over", env.Name)
			continue
		}
		if e.Env == nil {
			e.Env = ensemble.Env{}
		}
		e.Env[env.Name] = env.Value
	}

	seen := map[string]bool{}
	for i, p := range c.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", cp, i)
		proto := ensemble.Protocol(strings.ToLower(string(p.Protocol)))
		if proto == "" {
			proto = ensemble.TCP
		}
		if proto != ensemble.TCP && proto != ensemble.UDP {
			ws.add(pp, "protocol %s is not carried over", p.Protocol)
			continue
		}
		key := fmt.Sprintf("%d/%s", p.ContainerPort, proto)
		if seen[key] {
			ws.add(pp, "%s is already declared", key)
			continue
		}
		seen[key] = true
		if p.HostIP != "" {
			ws.add(pp+".hostIP", "not carried over")
		}
		a.Ports = append(a.Ports, ensemble.Port{Port: int(p.ContainerPort), Protocol: proto, Public: int(p.HostPort)})
	}

	k8sResources(&a, c, cp, ws)

	for i, m := range c.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", cp, i)
		v, ok := volumes[m.Name]
		switch {
		case !ok:
			ws.add(mp, "no volume %q in the pod; not carried over", m.Name)
		case v.EmptyDir == nil:
			// warned about once, on the volume
		default:
			if m.SubPath != "" || m.SubPathExpr != "" {
				ws.add(mp+".subPath", "not carried over: the whole volume is mounted")
			}
			if a.Volumes == nil {
				a.Volumes = map[string]ensemble.Volume{}
			}
			a.Volumes[label(m.Name)] = ensemble.Volume{Path: m.MountPath, ReadOnly: m.ReadOnly}
		}
	}

	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}}
	var used string
	for _, p := range probes {
		if p.probe == nil {
			continue
		}
		pp := cp + "." + p.name
		switch {
		case task:
			ws.add(pp, "not carried over: a task has no healthcheck")
		case used != "":
			ws.add(pp, "not carried over: the %s is the healthcheck", used)
		default:
			if h := k8sProbe(&a, c, p.probe, pp, ws); h != nil {
				a.Healthcheck, used = h, p.name
			}
		}
	}
	return a, true
}

func k8sResources(a *ensemble.Allocation, c corev1.Container, cp string, ws *warnings) {
	pick := func(name corev1.ResourceName) (resource.Quantity, bool) {
		if q, ok := c.Resources.Limits[name]; ok {
			return q, true
		}
		q, ok := c.Resources.Requests[name]
		return q, ok
	}
	res := &a.Resources
	if q, ok := pick(corev1.ResourceCPU); ok && q.Sign() > 0 {
		res.CPU = match.MilliCPU(q.MilliValue())
	}
	if q, ok := pick(corev1.ResourceMemory); ok && q.Sign() > 0 {
		res.RAM = match.Bytes(q.Value())
	}
	if q, ok := pick(corev1.ResourceEphemeralStorage); ok && q.Sign() > 0 {
		res.Disk = match.Bytes(q.Value())
	}
	names := map[string]bool{}
	for k := range c.Resources.Limits {
		names[string(k)] = true
	}
	for k := range c.Resources.Requests {
		names[string(k)] = true
	}
	for _, k := range mapkeys.Sorted(names) {
		name := corev1.ResourceName(k)
		switch name {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			continue
		}
		if vendor, ok := gpuResources[name]; ok {
			if q, _ := pick(name); q.Value() > 0 {
				res.GPUs = append(res.GPUs, ensemble.GPU{Vendor: vendor, Count: int(min(q.Value(), 1024))})
			}
			continue
		}
		ws.add(cp+".resources."+k, "not carried over")
	}
	if res.CPU == 0 || res.RAM == 0 {
		ws.add(cp+".resources", "no CPU or memory given: the defaults (1 CPU, 256MiB) are reserved for what is missing")
	}
}

// k8sProbe maps a probe to a healthcheck, adding its port to the
// allocation's ports when it is not declared.
func k8sProbe(a *ensemble.Allocation, c corev1.Container, p *corev1.Probe, pp string, ws *warnings) *ensemble.Healthcheck {
	h := &ensemble.Healthcheck{
		Interval: secondsOr(p.PeriodSeconds, 10), // Kubernetes' defaults
		Timeout:  secondsOr(p.TimeoutSeconds, 1),
		Retries:  int(p.FailureThreshold),
	}
	if h.Retries == 0 {
		h.Retries = 3
	}
	if p.InitialDelaySeconds > 0 {
		h.StartPeriod = time.Duration(p.InitialDelaySeconds) * time.Second
	}
	if h.Timeout > h.Interval {
		h.Timeout = h.Interval
	}
	port := func(v intstr.IntOrString) (int, bool) {
		if v.Type == intstr.Int {
			return int(v.IntVal), v.IntVal > 0 && v.IntVal < 65536
		}
		for _, cp := range c.Ports {
			if cp.Name == v.StrVal {
				return int(cp.ContainerPort), true
			}
		}
		ws.add(pp, "no port named %q; not carried over", v.StrVal)
		return 0, false
	}
	switch {
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			ws.add(pp, "an empty command is not carried over")
			return nil
		}
		h.Exec = p.Exec.Command
	case p.HTTPGet != nil:
		n, ok := port(p.HTTPGet.Port)
		if !ok {
			return nil
		}
		path := p.HTTPGet.Path
		if path == "" || !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		h.HTTP = &ensemble.HTTPProbe{Port: n, Path: path}
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS || p.HTTPGet.Host != "" || len(p.HTTPGet.HTTPHeaders) > 0 {
			ws.add(pp+".httpGet", "scheme HTTPS, host and headers are not carried over (a plain HTTP GET is made)")
		}
	case p.TCPSocket != nil:
		n, ok := port(p.TCPSocket.Port)
		if !ok {
			return nil
		}
		h.TCP = &ensemble.TCPProbe{Port: n}
	default:
		ws.add(pp, "not carried over: only exec, httpGet and tcpSocket probes are")
		return nil
	}
	probePort := 0
	if h.HTTP != nil {
		probePort = h.HTTP.Port
	} else if h.TCP != nil {
		probePort = h.TCP.Port
	}
	if probePort != 0 {
		declared := false
		for _, ap := range a.Ports {
			declared = declared || ap.Port == probePort && ap.Protocol == ensemble.TCP
		}
		if !declared {
			a.Ports = append(a.Ports, ensemble.Port{Port: probePort, Protocol: ensemble.TCP})
		}
	}
	return h
}

func secondsOr(s, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

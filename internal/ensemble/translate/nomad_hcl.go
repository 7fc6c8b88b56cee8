package translate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// A Nomad job file in HCL2 is read with hashicorp/hcl/v2 into the API JSON
// form of the job (a map[string]any, as encoding/json would decode it), so
// that one translation serves both: job "x" becomes {"ID": "x", "Name":
// "x"}, group blocks TaskGroups, task blocks Tasks, port blocks
// ReservedPorts or DynamicPorts, and so on. The subset mapped by name is
// the one the translation reads; every other block and attribute keeps its
// name in CamelCase, to be reported as not carried over.
//
// Interpolations that Nomad resolves when it places the job (${NOMAD_*},
// ${attr.*}, ${node.*}, ${meta.*}) are kept as written; variable blocks
// with a default, and locals, are evaluated (var.x, local.y). No function
// can be called: file() and its like would read files.

// hclBlock says where a nested block goes in its parent's API object.
type hclBlock struct {
	api   string // the key in the parent object
	list  bool   // the parent holds a list of them
	label string // the key the block's label goes to; "" for none
	kind  string // the rules of its body (hclAttrs, hclBlocks)
}

// hclBlocks are the nested blocks mapped by name, by kind of parent.
var hclBlocks = map[string]map[string]hclBlock{
	"job": {
		"group":         {"TaskGroups", true, "Name", "group"},
		"periodic":      {"Periodic", false, "", "periodic"},
		"parameterized": {"ParameterizedJob", false, "", "parameterized"},
		"meta":          {"Meta", false, "", "map"},
	},
	"group": {
		"task":           {"Tasks", true, "Name", "task"},
		"network":        {"Networks", true, "", "network"},
		"service":        {"Services", true, "", "service"},
		"restart":        {"RestartPolicy", false, "", "restart"},
		"ephemeral_disk": {"EphemeralDisk", false, "", "ephemeral_disk"},
		"meta":           {"Meta", false, "", "map"},
	},
	"task": {
		"config":    {"Config", false, "", "config"},
		"env":       {"Env", false, "", "map"},
		"resources": {"Resources", false, "", "resources"},
		"service":   {"Services", true, "", "service"},
		"restart":   {"RestartPolicy", false, "", "restart"},
		"lifecycle": {"Lifecycle", false, "", "lifecycle"},
		"template":  {"Templates", true, "", "template"},
		"artifact":  {"Artifacts", true, "", "artifact"},
		"meta":      {"Meta", false, "", "map"},
	},
	"resources": {
		"device":  {"Devices", true, "Name", "device"},
		"network": {"Networks", true, "", "network"},
	},
	"service": {
		"check": {"Checks", true, "", "check"},
	},
}

// hclAttrs are the attributes whose API name is not their name in
// CamelCase, by kind of block.
var hclAttrs = map[string]map[string]string{
	"resources":      {"cpu": "CPU", "cores": "Cores", "memory": "MemoryMB", "memory_max": "MemoryMaxMB", "disk": "DiskMB"},
	"service":        {"port": "PortLabel", "task": "TaskName"},
	"check":          {"port": "PortLabel"},
	"ephemeral_disk": {"size": "SizeMB"},
	"periodic":       {"cron": "Spec", "crons": "Specs"},
	"template":       {"destination": "DestPath", "data": "EmbeddedTmpl", "source": "SourcePath"},
	"artifact":       {"source": "GetterSource", "destination": "RelativeDest"},
}

// hclLists are the API names of the blocks a parent holds a list of, that
// the translation does not read (it reports them as not carried over).
var hclLists = map[string]string{
	"constraint": "Constraints", "affinity": "Affinities", "spread": "Spreads",
	"volume": "Volumes", "volume_mount": "VolumeMounts",
}

// hclDurations are the attributes written as durations ("15s"), which the
// API form holds in nanoseconds.
var hclDurations = map[string]map[string]bool{
	"restart": {"delay": true, "interval": true},
	"check":   {"interval": true, "timeout": true},
}

// nomadHCL reads a Nomad job file in HCL2 into the API form of its job. The
// hclConv it returns places warnings given on the API form in the file.
func nomadHCL(data []byte) (map[string]any, *hclConv, error) {
	f, diags := hclsyntax.ParseConfig(data, "", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, nil, diagError(diags)
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil, nil, errors.New("not an HCL job file")
	}
	c := &hclConv{src: data, ctx: &hcl.EvalContext{Variables: map[string]cty.Value{}}, locs: map[string]hclLoc{}}
	if names := mapkeys.Sorted(body.Attributes); len(names) > 0 {
		a := body.Attributes[names[0]]
		return nil, nil, rangeError(a.SrcRange, fmt.Sprintf("unexpected attribute %s outside the job block", a.Name))
	}
	if err := c.variables(body); err != nil {
		return nil, nil, err
	}
	var job *hclsyntax.Block
	for _, b := range body.Blocks {
		switch b.Type {
		case "variable", "locals":
		case "job":
			if job != nil {
				return nil, nil, rangeError(b.DefRange(), "a second job block: a file holds one job")
			}
			job = b
		default:
			return nil, nil, rangeError(b.DefRange(), fmt.Sprintf("unexpected block %s (want job, variable or locals)", b.Type))
		}
	}
	if job == nil {
		return nil, nil, errors.New("no job block")
	}
	if len(job.Labels) != 1 {
		return nil, nil, rangeError(job.DefRange(), `the job block needs one name: job "example" { ... }`)
	}
	c.at("Job", "job", job.DefRange().Start.Line)
	out, err := c.body(job.Body, "job", "Job", "job")
	if err != nil {
		return nil, nil, err
	}
	out["ID"] = job.Labels[0]
	if _, ok := out["Name"]; !ok {
		out["Name"] = job.Labels[0]
	}
	return out, c, nil
}

// hclConv converts the blocks of one file.
type hclConv struct {
	src  []byte
	ctx  *hcl.EvalContext
	locs map[string]hclLoc // API path -> where in the file
}

// hclLoc is where an API path comes from in the file.
type hclLoc struct {
	path string // group.cache.task.redis.config.image
	line int
}

// at records where the API path api comes from, unless it is known.
func (c *hclConv) at(api, where string, line int) {
	if _, ok := c.locs[api]; !ok {
		c.locs[api] = hclLoc{where, line}
	}
}

// place rewrites the paths of warnings given on the API form
// (TaskGroups.cache.Tasks.redis.Config.auth_soft_fail) into the file's
// terms (group.cache.task.redis.config.auth_soft_fail) with the line.
func (c *hclConv) place(ws []Warning) {
	for i, w := range ws {
		for p := w.Path; p != ""; {
			if l, ok := c.locs[p]; ok {
				ws[i].Path, ws[i].Line = l.path+snake(w.Path[len(p):]), l.line
				break
			}
			cut := strings.LastIndexAny(p, ".[")
			if cut < 0 {
				break
			}
			p = p[:cut]
		}
	}
}

// variables evaluates the defaults of the variable blocks, and the locals,
// into the evaluation context.
func (c *hclConv) variables(body *hclsyntax.Body) error {
	vars := map[string]cty.Value{}
	for _, b := range body.Blocks {
		if b.Type != "variable" {
			continue
		}
		if len(b.Labels) != 1 {
			return rangeError(b.DefRange(), `a variable block needs one name: variable "x" { default = ... }`)
		}
		def, ok := b.Body.Attributes["default"]
		if !ok {
			return rangeError(b.DefRange(), fmt.Sprintf("variable %s has no default: dms translate takes no -var, give it one", b.Labels[0]))
		}
		v, diags := def.Expr.Value(nil)
		if diags.HasErrors() {
			return diagError(diags)
		}
		vars[b.Labels[0]] = v
	}
	c.ctx.Variables["var"] = cty.ObjectVal(vars)
	locals := map[string]cty.Value{}
	for _, b := range body.Blocks {
		if b.Type != "locals" {
			continue
		}
		for _, name := range mapkeys.Sorted(b.Body.Attributes) {
			c.ctx.Variables["local"] = cty.ObjectVal(locals)
			v, diags := b.Body.Attributes[name].Expr.Value(c.ctx)
			if diags.HasErrors() {
				return diagError(diags)
			}
			locals[name] = v
		}
	}
	c.ctx.Variables["local"] = cty.ObjectVal(locals)
	return nil
}

// body converts a block body of the given kind into its API object; api and
// where are its path in the API form and in the file.
func (c *hclConv) body(b *hclsyntax.Body, kind, api, where string) (map[string]any, error) {
	out := map[string]any{}
	for _, name := range mapkeys.Sorted(b.Attributes) {
		a := b.Attributes[name]
		v, err := c.value(a.Expr)
		if err != nil {
			return nil, err
		}
		key := apiName(kind, name)
		if kind == "map" { // env and meta hold strings
			switch x := v.(type) {
			case float64:
				v = strconv.FormatFloat(x, 'f', -1, 64)
			case bool:
				v = strconv.FormatBool(x)
			}
		}
		if hclDurations[kind][name] {
			if s, ok := v.(string); ok {
				d, err := time.ParseDuration(s)
				if err != nil {
					return nil, rangeError(a.Expr.Range(), fmt.Sprintf("%s = %q is not a duration (want 10s, 5m)", name, s))
				}
				v = int64(d)
			}
		}
		out[key] = v
		c.at(api+"."+key, where+"."+name, a.SrcRange.Start.Line)
	}
	for _, blk := range b.Blocks {
		if kind == "map" {
			return nil, rangeError(blk.DefRange(), fmt.Sprintf("unexpected block %s: this block holds NAME = value only", blk.Type))
		}
		if kind == "network" && blk.Type == "port" {
			if err := c.port(blk, out, api, where); err != nil {
				return nil, err
			}
			continue
		}
		rule, ok := hclBlocks[kind][blk.Type]
		if !ok {
			rule = hclBlock{api: apiName(kind, blk.Type), list: true, label: "Name", kind: "other"}
			if n, ok := hclLists[blk.Type]; ok && kind != "config" {
				rule.api = n
			}
			if kind == "config" {
				rule.kind = "config"
			}
		}
		subAPI, subWhere := c.blockPaths(blk, rule, out, api, where)
		sub, err := c.body(blk.Body, rule.kind, subAPI, subWhere)
		if err != nil {
			return nil, err
		}
		_, known := hclBlocks[kind][blk.Type]
		switch {
		case len(blk.Labels) == 0:
			if known && rule.label != "" {
				return nil, rangeError(blk.DefRange(), fmt.Sprintf(`a %s block needs a name: %s "name" { ... }`, blk.Type, blk.Type))
			}
		case len(blk.Labels) == 1 && rule.label != "":
			sub[rule.label] = blk.Labels[0]
		default:
			return nil, rangeError(blk.DefRange(), fmt.Sprintf("a %s block takes %s", blk.Type, map[bool]string{true: "one name", false: "no name"}[rule.label != ""]))
		}
		if !rule.list {
			if _, dup := out[rule.api]; dup {
				return nil, rangeError(blk.DefRange(), fmt.Sprintf("a second %s block", blk.Type))
			}
			out[rule.api] = sub
			continue
		}
		list, _ := out[rule.api].([]any)
		out[rule.api] = append(list, sub)
	}
	return out, nil
}

// blockPaths are the paths of a nested block in the API form and in the
// file (a group's: TaskGroups.cache and group.cache; the second check of
// service web: ...Services.web.Checks[1] and ...service.web.check[1]), also
// recorded with the line.
func (c *hclConv) blockPaths(blk *hclsyntax.Block, rule hclBlock, parent map[string]any, api, where string) (string, string) {
	line := blk.DefRange().Start.Line
	if where == "job" && blk.Type == "group" {
		where = "" // job.group.cache says no more than group.cache
	}
	name := ""
	if len(blk.Labels) > 0 {
		name = blk.Labels[0]
	} else if a, ok := blk.Body.Attributes["name"]; ok && blk.Type == "service" {
		if v, err := c.value(a.Expr); err == nil {
			name, _ = v.(string)
		}
	}
	subWhere := strings.TrimPrefix(where+"."+blk.Type, ".")
	if !rule.list {
		subAPI := api + "." + rule.api
		c.at(subAPI, subWhere, line)
		return subAPI, subWhere
	}
	list := api + "." + rule.api
	if api == "Job" && rule.api == "TaskGroups" {
		list = rule.api // TaskGroups.cache, not Job.TaskGroups.cache
	}
	c.at(list, subWhere, line)
	if name != "" {
		subAPI, subWhere := list+"."+name, subWhere+"."+name
		c.at(subAPI, subWhere, line)
		return subAPI, subWhere
	}
	n, _ := parent[rule.api].([]any)
	subAPI, subWhere := fmt.Sprintf("%s[%d]", list, len(n)), fmt.Sprintf("%s[%d]", subWhere, len(n))
	c.at(subAPI, subWhere, line)
	return subAPI, subWhere
}

// port converts a port block of a network: a static port is reserved on
// the host, the others are dynamic.
func (c *hclConv) port(blk *hclsyntax.Block, network map[string]any, api, where string) error {
	if len(blk.Labels) != 1 {
		return rangeError(blk.DefRange(), `a port block needs one name: port "http" { to = 8080 }`)
	}
	p, err := c.body(blk.Body, "other", api+".Ports."+blk.Labels[0], where+".port."+blk.Labels[0])
	if err != nil {
		return err
	}
	out := map[string]any{"Label": blk.Labels[0]}
	for k, v := range p {
		switch k {
		case "Static":
			out["Value"] = v
		default:
			out[k] = v
		}
	}
	key := "DynamicPorts"
	if _, ok := out["Value"]; ok {
		key = "ReservedPorts"
	}
	list, _ := network[key].([]any)
	network[key] = append(list, out)
	return nil
}

// value evaluates an expression into what encoding/json would decode.
func (c *hclConv) value(e hclsyntax.Expression) (any, error) {
	v, diags := e.Value(c.ctx)
	if diags.HasErrors() {
		s, ok := c.verbatim(e)
		if !ok {
			return nil, diagError(diags)
		}
		return s, nil
	}
	return ctyToAny(v), nil
}

// verbatim renders a template whose interpolations Nomad resolves at run
// time (${NOMAD_PORT_http}, ${attr.kernel.name}) as written. Variables and
// locals must resolve.
func (c *hclConv) verbatim(e hclsyntax.Expression) (string, bool) {
	switch e := e.(type) {
	case *hclsyntax.TemplateExpr:
		var b strings.Builder
		for _, p := range e.Parts {
			if v, diags := p.Value(c.ctx); !diags.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
				b.WriteString(v.AsString())
				continue
			}
			s, ok := c.verbatim(p)
			if !ok {
				return "", false
			}
			b.WriteString(s)
		}
		return b.String(), true
	case *hclsyntax.TemplateWrapExpr:
		return c.verbatim(e.Wrapped)
	case *hclsyntax.ScopeTraversalExpr:
		if root := e.Traversal.RootName(); root == "var" || root == "local" {
			return "", false
		}
		return "${" + string(e.Range().SliceBytes(c.src)) + "}", true
	}
	return "", false
}

// ctyToAny converts a value to the types encoding/json decodes into.
func ctyToAny(v cty.Value) any {
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString()
	case t == cty.Number:
		f, _ := v.AsBigFloat().Float64()
		return f
	case t == cty.Bool:
		return v.True()
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, ctyToAny(e))
		}
		return out
	case t.IsMapType() || t.IsObjectType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = ctyToAny(e)
		}
		return out
	}
	return nil
}

// apiName is the API name of an HCL attribute or block: the one in
// hclAttrs, else its name in CamelCase (auth_soft_fail: AuthSoftFail). The
// keys of config, env and meta blocks are kept as they are.
func apiName(kind, name string) string {
	if kind == "config" || kind == "map" {
		return name
	}
	if n, ok := hclAttrs[kind][name]; ok {
		return n
	}
	var b strings.Builder
	for _, part := range strings.Split(name, "_") {
		switch part {
		case "id", "cpu", "mb":
			b.WriteString(strings.ToUpper(part))
		case "":
		default:
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// snake writes the API names of a path in the file's terms:
// .Resources.CPU becomes .resources.cpu.
func snake(path string) string {
	var b strings.Builder
	for i, r := range path {
		if r >= 'A' && r <= 'Z' {
			if i > 0 && path[i-1] >= 'a' && path[i-1] <= 'z' {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// diagError makes one error of HCL diagnostics: the first error, where it
// is, and how many others there are.
func diagError(diags hcl.Diagnostics) error {
	errs := diags.Errs()
	if len(errs) == 0 {
		return errors.New("invalid HCL")
	}
	var d *hcl.Diagnostic
	if !errors.As(errs[0], &d) {
		return errs[0]
	}
	msg := d.Summary
	if d.Detail != "" {
		msg += ": " + strings.TrimSuffix(d.Detail, ".")
	}
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more errors)", len(errs)-1)
	}
	if d.Subject == nil {
		return errors.New(msg)
	}
	return rangeError(*d.Subject, msg)
}

// rangeError is an error at a place of the file.
func rangeError(r hcl.Range, msg string) error {
	return fmt.Errorf("line %d, column %d: %s", r.Start.Line, r.Start.Column, msg)
}

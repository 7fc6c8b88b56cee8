package api

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPISchemasMatchTypes keeps the schemas of openapi.yaml in step
// with the JSON fields of the deployment types.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	type schema struct {
		Properties map[string]struct {
			Items *schema `yaml:"items"`
		} `yaml:"properties"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	for _, tc := range []struct {
		name string
		s    func() (schema, bool)
		typ  reflect.Type
	}{
		{"Deployment", func() (schema, bool) { s, ok := schemas["Deployment"]; return s, ok }, reflect.TypeFor[Deployment]()},
		{"Deployment.allocations", func() (schema, bool) {
			p, ok := schemas["Deployment"].Properties["allocations"]
			if !ok || p.Items == nil {
				return schema{}, false
			}
			return *p.Items, true
		}, reflect.TypeFor[DeploymentAlloc]()},
		{"DeploymentEvent", func() (schema, bool) { s, ok := schemas["DeploymentEvent"]; return s, ok }, reflect.TypeFor[DeploymentEvent]()},
		{"DeploymentEvents", func() (schema, bool) { s, ok := schemas["DeploymentEvents"]; return s, ok }, reflect.TypeFor[DeploymentEvents]()},
		{"ResultVolume", func() (schema, bool) { s, ok := schemas["ResultVolume"]; return s, ok }, reflect.TypeFor[ResultVolume]()},
		{"ResultManifest", func() (schema, bool) { s, ok := schemas["ResultManifest"]; return s, ok }, reflect.TypeFor[ResultManifest]()},
		{"ResultManifest.files", func() (schema, bool) {
			p, ok := schemas["ResultManifest"].Properties["files"]
			if !ok || p.Items == nil {
				return schema{}, false
			}
			return *p.Items, true
		}, reflect.TypeFor[ResultFile]()},
		{"ResourceSnapshot", func() (schema, bool) { s, ok := schemas["ResourceSnapshot"]; return s, ok }, reflect.TypeFor[ResourceSnapshot]()},
		{"Contract", func() (schema, bool) { s, ok := schemas["Contract"]; return s, ok }, reflect.TypeFor[Contract]()},
		{"ContractUsage", func() (schema, bool) { s, ok := schemas["ContractUsage"]; return s, ok }, reflect.TypeFor[ContractUsage]()},
		{"ContractPrice", func() (schema, bool) { s, ok := schemas["ContractPrice"]; return s, ok }, reflect.TypeFor[ContractPrice]()},
		{"ContractDetail", func() (schema, bool) { s, ok := schemas["ContractDetail"]; return s, ok }, reflect.TypeFor[ContractDetail]()},
		{"ContractChain", func() (schema, bool) { s, ok := schemas["ContractChain"]; return s, ok }, reflect.TypeFor[ContractChain]()},
		{"SignedContract", func() (schema, bool) { s, ok := schemas["SignedContract"]; return s, ok }, reflect.TypeFor[SignedContract]()},
		{"SignedNote", func() (schema, bool) { s, ok := schemas["SignedNote"]; return s, ok }, reflect.TypeFor[SignedNote]()},
		{"DeploymentUsage", func() (schema, bool) { s, ok := schemas["DeploymentUsage"]; return s, ok }, reflect.TypeFor[DeploymentUsage]()},
		{"DeploymentUsage.contracts", func() (schema, bool) {
			p, ok := schemas["DeploymentUsage"].Properties["contracts"]
			if !ok || p.Items == nil {
				return schema{}, false
			}
			return *p.Items, true
		}, reflect.TypeFor[ContractUsed]()},
		{"DeploymentTrace", func() (schema, bool) { s, ok := schemas["DeploymentTrace"]; return s, ok }, reflect.TypeFor[DeploymentTrace]()},
		{"Span", func() (schema, bool) { s, ok := schemas["Span"]; return s, ok }, reflect.TypeFor[Span]()},
		{"Span.events", func() (schema, bool) {
			p, ok := schemas["Span"].Properties["events"]
			if !ok || p.Items == nil {
				return schema{}, false
			}
			return *p.Items, true
		}, reflect.TypeFor[SpanEvent]()},
		{"TraceNode", func() (schema, bool) { s, ok := schemas["TraceNode"]; return s, ok }, reflect.TypeFor[TraceNode]()},
		{"DeploymentIndex", func() (schema, bool) { s, ok := schemas["DeploymentIndex"]; return s, ok }, reflect.TypeFor[DeploymentIndex]()},
		{"DeploymentSummary", func() (schema, bool) { s, ok := schemas["DeploymentSummary"]; return s, ok }, reflect.TypeFor[DeploymentSummary]()},
		{"Validation", func() (schema, bool) { s, ok := schemas["Validation"]; return s, ok }, reflect.TypeFor[Validation]()},
		{"EnsembleProblem", func() (schema, bool) { s, ok := schemas["EnsembleProblem"]; return s, ok }, reflect.TypeFor[EnsembleProblem]()},
		{"DashboardDeployRequest", func() (schema, bool) { s, ok := schemas["DashboardDeployRequest"]; return s, ok }, reflect.TypeFor[DashboardDeployRequest]()},
		{"LedgerBalance", func() (schema, bool) { s, ok := schemas["LedgerBalance"]; return s, ok }, reflect.TypeFor[LedgerBalance]()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := tc.s()
			if !ok {
				t.Fatalf("openapi.yaml has no schema %s", tc.name)
			}
			var documented, fields []string
			for k := range s.Properties {
				documented = append(documented, k)
			}
			for i := range tc.typ.NumField() {
				name, _, _ := strings.Cut(tc.typ.Field(i).Tag.Get("json"), ",")
				fields = append(fields, name)
			}
			sort.Strings(documented)
			sort.Strings(fields)
			if !reflect.DeepEqual(documented, fields) {
				t.Errorf("schema %s has properties\n  %v\nbut %s has the JSON fields\n  %v", tc.name, documented, tc.typ, fields)
			}
		})
	}
}

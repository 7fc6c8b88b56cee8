package orchestrator

import (
	"testing"

	"github.com/dmsnet/dms/internal/telemetry"
)

// TestAttributeKeys: the span attribute keys are telemetry's.
func TestAttributeKeys(t *testing.T) {
	if attrDeployment != telemetry.AttrDeployment || attrAllocation != telemetry.AttrAllocation {
		t.Fatalf("keys %q, %q; telemetry's are %q, %q", attrDeployment, attrAllocation, telemetry.AttrDeployment, telemetry.AttrAllocation)
	}
}

package cap

import (
	"errors"
	"fmt"
	"testing"
)

func TestDeniedErrorText(t *testing.T) {
	tests := []struct {
		name       string
		err        *DeniedError
		wantReason string
	}{
		{"a token", &DeniedError{Rule: RuleCommandEscalation, Token: "bafy1", Detail: "/dms/x is not under /dms/y"}, "command-escalation: token bafy1: /dms/x is not under /dms/y"},
		{"the invocation", &DeniedError{Rule: RuleReplay, Token: TokenInvocation, Detail: "nonce seen"}, "replay: invocation: nonce seen"},
		{"no token", &DeniedError{Rule: RuleUntrustedRoot, Detail: "no anchor"}, "untrusted-root: no anchor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Reason(); got != tt.wantReason {
				t.Fatalf("Reason() = %q, want %q", got, tt.wantReason)
			}
			if got := tt.err.Error(); got != "denied: "+tt.wantReason {
				t.Fatalf("Error() = %q, want %q", got, "denied: "+tt.wantReason)
			}
			wrapped := fmt.Errorf("verify: %w", tt.err)
			if !errors.Is(wrapped, ErrDenied) || RuleOf(wrapped) != tt.err.Rule {
				t.Fatalf("wrapped: Is(ErrDenied) = %v, RuleOf = %q", errors.Is(wrapped, ErrDenied), RuleOf(wrapped))
			}
		})
	}
}

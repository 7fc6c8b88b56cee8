package api

import "testing"

func TestErrorSaysNotFoundOnce(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"not found in message", Error{Status: 404, Code: CodeNotFound, Message: "deployment abc: not found"}, "deployment abc: not found"},
		{"not found elsewhere", Error{Status: 404, Code: CodeNotFound, Message: "no such route"}, "not-found: no such route"},
		{"denied keeps its code", Error{Status: 403, Code: CodeDenied, Message: "untrusted-root: chain not found"}, "denied: untrusted-root: chain not found"},
		{"code only", Error{Status: 500, Code: CodeInternal}, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

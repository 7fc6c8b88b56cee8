package executor

import "testing"

func TestImageDefaults(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		ok   bool
	}{
		{"empty command refused", Spec{Image: "img"}, false},
		{"image defaults allowed", Spec{Image: "img", ImageDefaults: true}, true},
		{"image defaults need an image", Spec{Module: []byte("\x00asm"), ImageDefaults: true}, false},
		{"a command needs no flag", Spec{Image: "img", Command: []string{"run"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

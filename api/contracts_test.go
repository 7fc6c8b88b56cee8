package api

import (
	"encoding/json"
	"testing"
)

func TestChainCompact(t *testing.T) {
	const signed = `{"contract":"c1","seq":1,"note":"a\u003cb c"}`
	tests := []struct {
		name    string
		body    string
		want    string
		wantErr bool
	}{
		{"as signed", signed, signed, false},
		{"indented by a printer", "{\n  \"contract\": \"c1\",\n  \"seq\": 1,\n  \"note\": \"a\\u003cb c\"\n}", signed, false},
		{"empty", "", "", false},
		{"not JSON", `{"seq":`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := ContractChain{
				Contract: &SignedContract{ID: "c1", Body: json.RawMessage(tt.body)},
				Notes:    []SignedNote{{Hash: "h", Body: json.RawMessage(tt.body)}},
			}
			err := ch.Compact()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Compact() = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := string(ch.Contract.Body); got != tt.want {
				t.Errorf("contract body = %s, want %s", got, tt.want)
			}
			if got := string(ch.Notes[0].Body); got != tt.want {
				t.Errorf("note body = %s, want %s", got, tt.want)
			}
		})
	}
}

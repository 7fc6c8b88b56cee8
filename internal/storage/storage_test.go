package storage

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	cases := []struct {
		name, in string
		want     Credentials
		err      string
	}{
		{"env", "AWS_ACCESS_KEY_ID=AK\nAWS_SECRET_ACCESS_KEY=SK\n", Credentials{AccessKeyID: "AK", SecretAccessKey: "SK"}, ""},
		{"lower, comments, export, quotes", "# mine\nexport access_key_id='AK'\nsecret_access_key=\"SK\"\nsession_token=T\n", Credentials{"AK", "SK", "T"}, ""},
		{"json", `{"access_key_id":"AK","secret_access_key":"SK"}`, Credentials{AccessKeyID: "AK", SecretAccessKey: "SK"}, ""},
		{"no secret", "access_key_id=AK\n", Credentials{}, "secret_access_key is missing"},
		{"no key", "secret_access_key=SK\n", Credentials{}, "access_key_id is missing"},
		{"not kv", "access_key_id=AK\nSUPERSECRET\n", Credentials{}, "line 2 is not KEY=VALUE"},
		{"unknown", "access_key_id=AK\nsecret_access_key=SK\npassword=x\n", Credentials{}, `unknown key "password"`},
		{"bad json", `{"access_key_id": 3}`, Credentials{}, "not a JSON object"},
		{"empty", "", Credentials{}, "access_key_id is missing"},
		{"json, blank key (found by FuzzParseCredentials)", `{"ACCess_keY_id":" ","seCret_ACCess_keY":"0"}`, Credentials{}, "access_key_id is missing"},
		{"json, spaces around", `{"access_key_id":" AK ","secret_access_key":"SK\t"}`, Credentials{AccessKeyID: "AK", SecretAccessKey: "SK"}, ""},
		{"one key twice", "{\"access_key_id\":\"A\",\"AWS_ACCESS_KEY_ID\":\"B\",\"secret_access_key\":\"S\"}", Credentials{}, "access_key_id given twice"},
		{"not UTF-8", "access_key_id=\xff\nsecret_access_key=SK\n", Credentials{}, "not UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCredentials([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "SUPERSECRET") {
					t.Fatal("the error quotes the secret")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v", got.MarshalSecret(), err)
			}
			back, err := ParseCredentials(got.MarshalSecret())
			if err != nil || back != got {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

func TestCredentialsNeverPrint(t *testing.T) {
	c := Credentials{AccessKeyID: "AKIDSECRET", SecretAccessKey: "VERYSECRET"}
	j, _ := json.Marshal(struct{ C Credentials }{c})
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v", c, c, c), string(j)} {
		if strings.Contains(s, "SECRET") {
			t.Fatalf("printed %q", s)
		}
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("access_key_id=a\nsecret_access_key=b\n"))
	f.Add([]byte(`{"access_key_id":"a","secret_access_key":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err == nil {
			if back, err := ParseCredentials(c.MarshalSecret()); err != nil || back != c {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

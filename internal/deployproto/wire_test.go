package deployproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// sampleRequest is a bid request with every field set.
func sampleRequest() deployproto.BidRequest {
	at := time.Date(2026, 12, 5, 6, 0, 0, 123456789, time.UTC)
	return deployproto.BidRequest{
		Deployment:   "d-1",
		Orchestrator: actor.Handle{DID: "did:key:zOrch", Host: "12D3KooWOrch", Inbox: "orch-d-1"},
		Round:        3,
		Nodes: []deployproto.NodeRequest{{
			Name: "web",
			Request: match.Request{
				Resources: match.Resources{CPU: 1500, RAM: 2 << 30, Disk: 10 << 30,
					GPUs:  []match.GPU{{Index: 0, Vendor: "nvidia", Model: "T4", VRAM: 16 << 30}},
					Extra: map[string]int64{"fpga": 1, "asic": 2}},
				Executors: []string{"docker", "subnet"},
				Location: match.LocationRule{Accept: []match.Location{{Continent: "EU"}, {Country: "US", Subdivision: "US-CA"}},
					Reject: []match.Location{{City: "Berlin"}}},
				MaxPrice: 2_500_000,
				Window:   match.Window{Start: at},
				Prefer: match.Preferences{Locations: []match.Location{{Country: "DE"}}, Window: match.Window{Start: at, End: at.Add(time.Hour)},
					Weights: match.Weights{Price: 0.5, Performance: 0.25, Location: 0.125, Time: 0.125}},
			},
			Peer:        "12D3KooWPinned",
			Credentials: []string{"s3-main"},
		}, {Name: "db", Request: match.Request{Resources: match.Resources{CPU: 10}}}},
	}
}

// sampleBid is a bid with every field set.
func sampleBid() deployproto.Bid {
	return deployproto.Bid{
		Nodes: []string{"web", "db"}, Reservation: "d-1.3", Expires: time.Date(2026, 12, 5, 6, 0, 30, 0, time.UTC),
		Offer: match.Offer{
			Free:      match.Resources{CPU: 64000, RAM: 64 << 30, Disk: 1 << 40, Extra: map[string]int64{"fpga": 4}},
			Executors: []string{"docker", "wasm"},
			Location:  match.Location{Continent: "EU", Country: "DE", City: "Berlin"},
			Price:     match.Price{CPU: 500_000, RAM: 100_000, Disk: 10_000, GPU: 2_000_000},
			Performance: match.Performance{CPUSingle: 1000, CPUMulti: 1998, MemoryMBps: 42126.5,
				DiskWriteMBps: 265, DiskReadMBps: 2554, FsyncP50: 102},
			Available: match.Window{End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		Latencies: map[string]float64{"12D3KooWA": 0.25, "12D3KooWB": 12.5},
	}
}

// TestWireRoundTrip: each binary form decodes to the value encoded, and
// the JSON form of the same value decodes through the same functions.
func TestWireRoundTrip(t *testing.T) {
	req := sampleRequest()
	bid := sampleBid()
	reply := deployproto.BidReply{
		Provider: actor.Handle{DID: "did:key:zProv", Host: "12D3KooWProv", Inbox: actor.RootInbox},
		Offer:    &bid.Offer,
		Bid:      &deployproto.SignedBid{Body: deployproto.MarshalBid(&bid), Signature: []byte{1, 2, 3}},
		NoBids:   []deployproto.NoBid{{Node: "db", Reasons: []string{"cpu: want 1, free 0"}, Kind: deployproto.KindResource}},
	}
	release := deployproto.ReleaseRequest{Deployment: "d1", Reservation: "d1.3", Keep: []string{"12D3KooWProv", "12D3KooWOther"}}
	tests := []struct {
		name   string
		binary []byte
		json   any
		decode func([]byte) (any, error)
		want   any
	}{
		{"request", deployproto.MarshalBidRequest(&req), req,
			func(p []byte) (any, error) { return deployproto.UnmarshalBidRequest(p) }, req},
		{"empty request", deployproto.MarshalBidRequest(&deployproto.BidRequest{}), deployproto.BidRequest{},
			func(p []byte) (any, error) { return deployproto.UnmarshalBidRequest(p) }, deployproto.BidRequest{}},
		{"bid", deployproto.MarshalBid(&bid), bid,
			func(p []byte) (any, error) { return deployproto.UnmarshalBid(p) }, bid},
		{"reply", deployproto.MarshalBidReply(&reply), nil,
			func(p []byte) (any, error) { return deployproto.UnmarshalBidReply(p) }, reply},
		{"empty reply", deployproto.MarshalBidReply(&deployproto.BidReply{}), deployproto.BidReply{},
			func(p []byte) (any, error) { return deployproto.UnmarshalBidReply(p) }, deployproto.BidReply{}},
		{"release", deployproto.MarshalReleaseRequest(&release), release,
			func(p []byte) (any, error) { return deployproto.UnmarshalReleaseRequest(p) }, release},
		{"empty release", deployproto.MarshalReleaseRequest(&deployproto.ReleaseRequest{}), deployproto.ReleaseRequest{},
			func(p []byte) (any, error) { return deployproto.UnmarshalReleaseRequest(p) }, deployproto.ReleaseRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !deployproto.IsBinary(tt.binary) {
				t.Fatalf("IsBinary(%x) = false", tt.binary[:1])
			}
			got, err := tt.decode(tt.binary)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, tt.want)
			}
			if tt.json == nil {
				return
			}
			js, err := json.Marshal(tt.json)
			if err != nil {
				t.Fatal(err)
			}
			if deployproto.IsBinary(js) {
				t.Fatal("IsBinary(JSON) = true")
			}
			fromJSON, err := tt.decode(js)
			if err != nil {
				t.Fatalf("decode JSON: %v", err)
			}
			// JSON and binary agree on the value (times compared as
			// instants: JSON keeps no location beyond UTC either).
			a, _ := json.Marshal(fromJSON)
			b, _ := json.Marshal(got)
			if !bytes.Equal(a, b) {
				t.Fatalf("JSON form decodes to\n%s\nbinary form to\n%s", a, b)
			}
		})
	}
}

// TestWireStrict: malformed binary messages are refused with ErrWire, not
// decoded to something else, and never panic.
func TestWireStrict(t *testing.T) {
	req := sampleRequest()
	good := deployproto.MarshalBidRequest(&req)
	bid := sampleBid()
	goodBid := deployproto.MarshalBid(&bid)
	withByte := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	// Offsets in the request: tag, then the deployment name's length.
	nan := bytes.Clone(goodBid)
	// the last 8 bytes before the window and DryRun are FsyncP50... find
	// the float 102 and make it NaN.
	f102 := []byte{0, 0, 0, 0, 0, 0x80, 0x59, 0x40}
	i := bytes.Index(nan, f102)
	if i < 0 {
		t.Fatal("float 102 not found in the bid")
	}
	copy(nan[i:], []byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	tests := []struct {
		name   string
		in     []byte
		decode func([]byte) error
		want   string
	}{
		{"empty", []byte{0xB1}, reqDecode, "truncated"},
		{"other tag", withByte(good, 0, 0xB3), reqDecode, "not a message of tag"},
		{"trailing byte", append(bytes.Clone(good), 0), reqDecode, "bytes after the message"},
		{"truncated", good[:len(good)-1], reqDecode, ""},
		{"overlong varint", append([]byte{0xB1, 0x83, 0x00}, good[2:]...), reqDecode, "minimal length"},
		{"string longer than the message", append([]byte{0xB1, 0xff, 0x7f}, good[2:]...), reqDecode, "bytes,"},
		{"not UTF-8", append([]byte{0xB1, 0x03, 0xff, 0xfe, 0xfd}, good[5:]...), reqDecode, "UTF-8"},
		{"too many nodes", deployproto.MarshalBidRequest(&deployproto.BidRequest{Nodes: make([]deployproto.NodeRequest, deployproto.MaxNodes+1)}), reqDecode, "items"},
		{"negative cpu", deployproto.MarshalBidRequest(&deployproto.BidRequest{Nodes: []deployproto.NodeRequest{{Request: match.Request{Resources: match.Resources{CPU: -1}}}}}), reqDecode, "cpu"},
		{"too much cpu", deployproto.MarshalBidRequest(&deployproto.BidRequest{Nodes: []deployproto.NodeRequest{{Request: match.Request{Resources: match.Resources{CPU: match.MaxMilliCPU + 1}}}}}), reqDecode, "cpu"},
		{"negative price", deployproto.MarshalBidRequest(&deployproto.BidRequest{Nodes: []deployproto.NodeRequest{{Request: match.Request{MaxPrice: -1}}}}), reqDecode, "negative"},
		{"NaN", nan, bidDecode, "not finite"},
		{"boolean 2", withByte(goodBid, len(goodBid)-1, 2), bidDecode, "boolean"},
		{"JSON bid in a binary reply", deployproto.MarshalBidReply(&deployproto.BidReply{Bid: &deployproto.SignedBid{Body: []byte(`{}`)}}), replyDecode, "not binary"},
		{"bad JSON", []byte(`{"deployment":`), reqDecode, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.in)
			if err == nil {
				t.Fatal("decoded")
			}
			if deployproto.IsBinary(tt.in) && !errors.Is(err, deployproto.ErrWire) {
				t.Errorf("error %v does not wrap ErrWire", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func reqDecode(p []byte) error   { _, err := deployproto.UnmarshalBidRequest(p); return err }
func bidDecode(p []byte) error   { _, err := deployproto.UnmarshalBid(p); return err }
func replyDecode(p []byte) error { _, err := deployproto.UnmarshalBidReply(p); return err }

// TestWireAllocs shows why the binary form exists: decoding a bid request
// and encoding a reply in JSON take many times the allocations of the
// binary form (the text forms of MilliCPU and Money go through big.Rat
// and strconv). Allocation counts, not times: they do not move with the
// machine's load.
func TestWireAllocs(t *testing.T) {
	req := sampleRequest()
	bid := sampleBid()
	js, _ := json.Marshal(req)
	bin := deployproto.MarshalBidRequest(&req)
	jsonDecode := testing.AllocsPerRun(100, func() {
		var r deployproto.BidRequest
		if err := json.Unmarshal(js, &r); err != nil {
			t.Fatal(err)
		}
	})
	binDecode := testing.AllocsPerRun(100, func() {
		if _, err := deployproto.UnmarshalBidRequest(bin); err != nil {
			t.Fatal(err)
		}
	})
	jsonEncode := testing.AllocsPerRun(100, func() { _, _ = json.Marshal(&bid) })
	binEncode := testing.AllocsPerRun(100, func() { _ = deployproto.MarshalBid(&bid) })
	t.Logf("bid request decode: JSON %.0f allocations, binary %.0f; bid encode: JSON %.0f, binary %.0f", jsonDecode, binDecode, jsonEncode, binEncode)
	if binDecode*2 > jsonDecode {
		t.Errorf("binary decode allocates %.0f times, JSON %.0f: want at most half", binDecode, jsonDecode)
	}
	if binEncode*2 > jsonEncode {
		t.Errorf("binary encode allocates %.0f times, JSON %.0f: want at most half", binEncode, jsonEncode)
	}
}

// FuzzWire: no input makes a decoder panic, and whatever decodes is
// canonical — its re-encoding is the very input.
func FuzzWire(f *testing.F) {
	req := sampleRequest()
	bid := sampleBid()
	f.Add(deployproto.MarshalBidRequest(&req))
	f.Add(deployproto.MarshalBid(&bid))
	f.Add(deployproto.MarshalBidReply(&deployproto.BidReply{Offer: &bid.Offer,
		Bid: &deployproto.SignedBid{Body: deployproto.MarshalBid(&bid), Signature: []byte{9}}, NoBids: []deployproto.NoBid{{Node: "x", Kind: "resource"}}}))
	f.Add([]byte(`{"deployment":"d"}`))
	f.Add(deployproto.MarshalReleaseRequest(&deployproto.ReleaseRequest{Deployment: "d", Reservation: "d.1", Keep: []string{"p"}}))
	f.Fuzz(func(t *testing.T, p []byte) {
		if r, err := deployproto.UnmarshalReleaseRequest(p); err == nil && deployproto.IsBinary(p) {
			if again := deployproto.MarshalReleaseRequest(&r); !bytes.Equal(again, p) {
				t.Fatalf("release re-encodes to %x, was %x", again, p)
			}
		}
		if r, err := deployproto.UnmarshalBidRequest(p); err == nil && deployproto.IsBinary(p) {
			if again := deployproto.MarshalBidRequest(&r); !bytes.Equal(again, p) {
				t.Fatalf("request re-encodes to %x, was %x", again, p)
			}
		}
		if b, err := deployproto.UnmarshalBid(p); err == nil && deployproto.IsBinary(p) {
			if again := deployproto.MarshalBid(&b); !bytes.Equal(again, p) {
				t.Fatalf("bid re-encodes to %x, was %x", again, p)
			}
		}
		if r, err := deployproto.UnmarshalBidReply(p); err == nil && deployproto.IsBinary(p) {
			if again := deployproto.MarshalBidReply(&r); !bytes.Equal(again, p) {
				t.Fatalf("reply re-encodes to %x, was %x", again, p)
			}
		}
	})
}

// BenchmarkWire compares the forms: decoding a bid request, encoding a
// bid reply.
//
//	go test -run '^$' -bench Wire ./internal/deployproto/
func BenchmarkWire(b *testing.B) {
	req := sampleRequest()
	bid := sampleBid()
	reply := deployproto.BidReply{Offer: &bid.Offer, Bid: &deployproto.SignedBid{Body: deployproto.MarshalBid(&bid)}}
	js, _ := json.Marshal(req)
	bin := deployproto.MarshalBidRequest(&req)
	b.Run("request-decode/json", func(b *testing.B) {
		for b.Loop() {
			var r deployproto.BidRequest
			_ = json.Unmarshal(js, &r)
		}
	})
	b.Run("request-decode/binary", func(b *testing.B) {
		for b.Loop() {
			_, _ = deployproto.UnmarshalBidRequest(bin)
		}
	})
	b.Run("reply-encode/json", func(b *testing.B) {
		for b.Loop() {
			body, _ := json.Marshal(&bid)
			r := reply
			r.Bid = &deployproto.SignedBid{Body: body}
			_, _ = json.Marshal(&r)
		}
	})
	b.Run("reply-encode/binary", func(b *testing.B) {
		for b.Loop() {
			r := reply
			r.Bid = &deployproto.SignedBid{Body: deployproto.MarshalBid(&bid)}
			_ = deployproto.MarshalBidReply(&r)
		}
	})
	// The anchor of reply-encode/binary: the Ed25519 signature that a
	// binary bid carried until issue 20 (docs/security.md, "Bids").
	key, err := identity.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("reply-encode/binary-signed", func(b *testing.B) {
		for b.Loop() {
			r := reply
			r.Bid = &deployproto.SignedBid{Body: deployproto.MarshalBid(&bid)}
			r.Bid.Signature = key.Sign(r.Bid.SignedBytes("d-1", "12D3KooWA"))
			_ = deployproto.MarshalBidReply(&r)
		}
	})
}

package notary

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
)

// The cost test's pipe protocol (TestCostOf1000Contracts): length-prefixed
// binary frames, so that the test's transport costs little next to the
// notaries it measures (JSON lines cost 10–30 % of each process's CPU).
// A frame is a 4-byte big-endian length, then:
//
//	request: id (8 bytes), op (1 byte), then for opNote the sender's DID
//	         and the note's hash, body and provider signature; for the
//	         other ops the rpcRequest as JSON (they happen while the
//	         contracts are placed, outside the measured window)
//	reply:   id (8 bytes), code, err, contract (JSON, empty for none),
//	         then a flag byte and, when 1, the note's hash, body, provider
//	         and requester signatures
//
// Variable-length fields are a uvarint length and the bytes.

// Ops of the cost test's requests.
const (
	opPropose byte = iota + 1
	opAgree
	opNote
	opProfile
)

// maxFrame bounds a frame (a note is under 2 KiB; a contract under 64 KiB).
const maxFrame = 1 << 20

// errFrame is wrapped by the errors of a frame that does not decode.
var errFrame = errors.New("cost test: bad frame")

func opOf(name string) (byte, error) {
	switch name {
	case "propose":
		return opPropose, nil
	case "agree":
		return opAgree, nil
	case "note":
		return opNote, nil
	case "profile":
		return opProfile, nil
	}
	return 0, fmt.Errorf("cost test: unknown op %q", name)
}

func nameOf(op byte) string {
	return [...]string{"", "propose", "agree", "note", "profile"}[op]
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendString(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// appendRequest appends req's frame to b.
func appendRequest(b []byte, req rpcRequest) ([]byte, error) {
	op, err := opOf(req.Op)
	if err != nil {
		return nil, err
	}
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, req.ID)
	b = append(b, op)
	if op == opNote {
		if req.Note == nil {
			return nil, errors.New("cost test: note request without a note")
		}
		b = appendString(b, string(req.From))
		b = appendString(b, req.Note.Hash)
		b = appendBytes(b, req.Note.Body)
		b = appendBytes(b, req.Note.ProviderSig)
	} else {
		js, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		b = appendBytes(b, js)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

// appendReply appends rep's frame to b.
func appendReply(b []byte, rep rpcReply) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, rep.ID)
	b = appendString(b, string(rep.Code))
	b = appendString(b, rep.Err)
	var js []byte
	if rep.Contract != nil {
		var err error
		if js, err = json.Marshal(rep.Contract); err != nil {
			return nil, err
		}
	}
	b = appendBytes(b, js)
	if rep.Note == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendString(b, rep.Note.Hash)
		b = appendBytes(b, rep.Note.Body)
		b = appendBytes(b, rep.Note.ProviderSig)
		b = appendBytes(b, rep.Note.RequesterSig)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

// readFrame reads one frame's contents into buf (grown as needed).
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errFrame, n, maxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: %w", errFrame, err)
	}
	return buf, nil
}

// frameReader takes fields off a frame's contents; the first failure
// sticks in err.
type frameReader struct {
	b   []byte
	err error
}

func (f *frameReader) fail(what string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s", errFrame, what)
	}
}

func (f *frameReader) uint64() uint64 {
	if len(f.b) < 8 {
		f.fail("short id")
		return 0
	}
	v := binary.BigEndian.Uint64(f.b)
	f.b = f.b[8:]
	return v
}

func (f *frameReader) byte() byte {
	if len(f.b) < 1 {
		f.fail("short frame")
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

// bytes returns a copy of the next field (nil when empty).
func (f *frameReader) bytes() []byte {
	n, k := binary.Uvarint(f.b)
	if k <= 0 || n > uint64(len(f.b)-k) {
		f.fail("bad field length")
		return nil
	}
	f.b = f.b[k:]
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), f.b[:n]...)
	f.b = f.b[n:]
	return v
}

func (f *frameReader) string() string { return string(f.bytes()) }

func (f *frameReader) done() error {
	if f.err == nil && len(f.b) > 0 {
		f.fail(fmt.Sprintf("%d bytes after the last field", len(f.b)))
	}
	return f.err
}

// decodeRequest decodes a request frame's contents.
func decodeRequest(b []byte) (rpcRequest, error) {
	f := &frameReader{b: b}
	id := f.uint64()
	op := f.byte()
	var req rpcRequest
	switch {
	case f.err != nil:
	case op == opNote:
		req.From = identity.DID(f.string())
		req.Note = &contract.SignedNote{Hash: f.string(), Body: f.bytes(), ProviderSig: f.bytes()}
	case op >= opPropose && op <= opProfile:
		js := f.bytes()
		if f.err == nil {
			if err := json.Unmarshal(js, &req); err != nil {
				return rpcRequest{}, fmt.Errorf("%w: %w", errFrame, err)
			}
		}
	default:
		f.fail(fmt.Sprintf("op %d", op))
	}
	if err := f.done(); err != nil {
		return rpcRequest{}, err
	}
	req.ID, req.Op = id, nameOf(op)
	return req, nil
}

// decodeReply decodes a reply frame's contents.
func decodeReply(b []byte) (rpcReply, error) {
	f := &frameReader{b: b}
	rep := rpcReply{ID: f.uint64()}
	rep.Code = actor.Code(f.string())
	rep.Err = f.string()
	if js := f.bytes(); f.err == nil && len(js) > 0 {
		rep.Contract = new(contract.Contract)
		if err := json.Unmarshal(js, rep.Contract); err != nil {
			return rpcReply{}, fmt.Errorf("%w: %w", errFrame, err)
		}
	}
	switch f.byte() {
	case 0:
	case 1:
		rep.Note = &contract.SignedNote{Hash: f.string(), Body: f.bytes(), ProviderSig: f.bytes(), RequesterSig: f.bytes()}
	default:
		f.fail("note flag")
	}
	if err := f.done(); err != nil {
		return rpcReply{}, err
	}
	return rep, nil
}

// FuzzCostFrame: the cost test's frame decoders never panic on arbitrary
// bytes, and what they accept encodes back to frames that decode the same.
func FuzzCostFrame(f *testing.F) {
	n := &contract.SignedNote{Hash: strings.Repeat("ab", 32), Body: []byte(`{"seq":1}`), ProviderSig: []byte{1, 2}, RequesterSig: []byte{3}}
	for _, req := range []rpcRequest{
		{ID: 7, Op: "note", From: "did:key:z6Mk", Note: n},
		{ID: 8, Op: "agree", Key: "c1", Sig: []byte{9}},
		{ID: 9, Op: "profile"},
	} {
		b, err := appendRequest(nil, req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[4:])
	}
	for _, rep := range []rpcReply{{ID: 7, Note: n}, {ID: 8, Code: "note-refused", Err: "no"}, {ID: 9}} {
		b, err := appendReply(nil, rep)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[4:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := decodeRequest(b); err == nil {
			again, err := appendRequest(nil, req)
			if err != nil {
				t.Fatalf("appendRequest(decoded) = %v", err)
			}
			req2, err := decodeRequest(again[4:])
			if err != nil || req2.ID != req.ID || req2.Op != req.Op {
				t.Fatalf("request round trip = %+v, %v; want %+v", req2, err, req)
			}
		} else if !errors.Is(err, errFrame) {
			t.Fatalf("decodeRequest error %v does not wrap errFrame", err)
		}
		if rep, err := decodeReply(b); err == nil {
			again, err := appendReply(nil, rep)
			if err != nil {
				t.Fatalf("appendReply(decoded) = %v", err)
			}
			rep2, err := decodeReply(again[4:])
			if err != nil || rep2.ID != rep.ID || rep2.Code != rep.Code || rep2.Err != rep.Err || (rep2.Note == nil) != (rep.Note == nil) {
				t.Fatalf("reply round trip = %+v, %v; want %+v", rep2, err, rep)
			}
		} else if !errors.Is(err, errFrame) {
			t.Fatalf("decodeReply error %v does not wrap errFrame", err)
		}
	})
}

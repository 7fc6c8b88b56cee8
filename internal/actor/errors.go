package actor

import (
	"errors"
	"fmt"
)

// Code is the stable name of a refusal or failure. Codes travel in error
// replies, appear in CLI output ("denied: ...") and REST errors, and label
// the runtime's counters.
type Code string

// The codes a remote invoker can receive, and the local ones.
const (
	CodeDenied          Code = "denied"           // the invocation does not authorize the behavior
	CodeUnknownBehavior Code = "unknown-behavior" // the actor has no such behavior
	CodeNoSuchActor     Code = "no-such-actor"    // no actor with that inbox and DID on the host
	CodeExpired         Code = "expired"          // the envelope expired before dispatch
	CodeReplay          Code = "replay"           // the envelope's nonce was seen before
	CodeMailboxFull     Code = "mailbox-full"     // the actor's mailbox is full; retry later
	CodeRateLimited     Code = "rate-limited"     // the sending peer exceeded its rate
	CodeTooLarge        Code = "too-large"        // the envelope exceeds the size limit
	CodeHostMismatch    Code = "host-mismatch"    // the claimed sending host is not the transport peer
	CodeBadEnvelope     Code = "bad-envelope"     // the envelope could not be decoded or is inconsistent
	CodeHandler         Code = "handler-error"    // the behavior returned an error
	CodePanic           Code = "handler-panic"    // the behavior panicked (the node keeps running)
	CodeShuttingDown    Code = "shutting-down"    // the node is stopping
	CodeTimeout         Code = "timeout"          // local: no reply before the deadline
	CodeUnreachable     Code = "unreachable"      // local: the host could not be reached
)

// Error is a typed failure of a message: a stable Code and a human message.
// Error() reads "code: message", e.g. "denied: untrusted-root: ...".
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Msg
}

// Is makes errors.Is(err, actor.ErrDenied) match any *Error with that code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Msg == ""
}

// Sentinels for errors.Is; each matches every *Error of its code.
var (
	ErrDenied          = &Error{Code: CodeDenied}
	ErrUnknownBehavior = &Error{Code: CodeUnknownBehavior}
	ErrNoSuchActor     = &Error{Code: CodeNoSuchActor}
	ErrExpired         = &Error{Code: CodeExpired}
	ErrReplay          = &Error{Code: CodeReplay}
	ErrMailboxFull     = &Error{Code: CodeMailboxFull}
	ErrRateLimited     = &Error{Code: CodeRateLimited}
	ErrTooLarge        = &Error{Code: CodeTooLarge}
	ErrHostMismatch    = &Error{Code: CodeHostMismatch}
	ErrBadEnvelope     = &Error{Code: CodeBadEnvelope}
	ErrHandler         = &Error{Code: CodeHandler}
	ErrPanic           = &Error{Code: CodePanic}
	ErrShuttingDown    = &Error{Code: CodeShuttingDown}
	ErrTimeout         = &Error{Code: CodeTimeout}
	ErrUnreachable     = &Error{Code: CodeUnreachable}
)

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, wrapping a plain error as a handler
// error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeHandler, Msg: err.Error()}
}

package cap

import (
	"errors"
	"fmt"
)

// Rule names the check that refused a token. Its text is stable: the CLI
// prints it, remote invokers receive it, tests match on it.
type Rule string

// The rules, in the order Authorize checks them for each token.
const (
	RuleMalformed         Rule = "malformed"          // undecodable, missing field, unknown proof, not a linear chain
	RuleSignature         Rule = "signature"          // a token's signature does not verify against its issuer
	RuleDepth             Rule = "depth"              // more delegations than the configured limit
	RuleAudience          Rule = "audience"           // a link of the chain, or the invocation's audience, names someone else
	RuleSubject           Rule = "subject"            // subjects disagree, or the chain does not start at a root delegation
	RuleCommandEscalation Rule = "command-escalation" // a token's command is not under its parent's
	RuleExpired           Rule = "expired"            // past a token's expiry (plus the clock-skew allowance)
	RuleNotYetValid       Rule = "not-yet-valid"      // before a token's not-before (minus the allowance)
	RulePolicy            Rule = "policy"             // the invocation's arguments fail a delegation's policy
	RuleRevoked           Rule = "revoked"            // a token of the chain was revoked
	RuleUntrustedRoot     Rule = "untrusted-root"     // the root is not anchored for the command here
	RuleReplay            Rule = "replay"             // a nonce seen before, or an expiry beyond the replay window
	RuleBinding           Rule = "binding"            // the invocation is not bound to the peer that sent it, or to its payload

	// Refusals of cap delegate: a re-delegation may only narrow its parent.
	RuleExpiryEscalation Rule = "expiry-escalation" // the new token would outlive its parent
	RulePolicyDropped    Rule = "policy-dropped"    // the new token would drop a statement of its parent's policy
)

// TokenInvocation is DeniedError.Token when the invocation itself failed.
const TokenInvocation = "invocation"

// ErrDenied is matched (errors.Is) by every *DeniedError.
var ErrDenied = errors.New("denied")

// DeniedError is a refusal: which rule failed, for which token (a CID, or
// TokenInvocation), and why. Its text is one line:
//
//	denied: command-escalation: token bafy…: /dms/node/deployment/new is not under /dms/node/peers
type DeniedError struct {
	Rule   Rule
	Token  string
	Detail string
}

func (e *DeniedError) Error() string { return "denied: " + e.Reason() }

// Reason is the refusal without its "denied: " prefix: the rule, the
// token and why ("command-escalation: token bafy…: …"). The API answers a
// refusal with code "denied" and this message.
func (e *DeniedError) Reason() string {
	tok := e.Token
	if tok != TokenInvocation && tok != "" {
		tok = "token " + tok
	}
	if tok == "" {
		return fmt.Sprintf("%s: %s", e.Rule, e.Detail)
	}
	return fmt.Sprintf("%s: %s: %s", e.Rule, tok, e.Detail)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

func deny(rule Rule, token, format string, args ...any) *DeniedError {
	return &DeniedError{Rule: rule, Token: token, Detail: fmt.Sprintf(format, args...)}
}

// RuleOf returns the rule of a *DeniedError in err's chain, or "".
func RuleOf(err error) Rule {
	var d *DeniedError
	if errors.As(err, &d) {
		return d.Rule
	}
	return ""
}

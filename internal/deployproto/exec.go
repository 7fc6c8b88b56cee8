package deployproto

import "time"

// The behaviors of an exec session in an allocation (`dms deployment
// exec`). They live under CmdAllocation, so the delegation a user gives
// their node for a deployment authorizes them like the other allocation
// behaviors.
const (
	BehaviorExec       = "/dms/allocation/exec"        // ExecRequest → ExecStarted
	BehaviorExecInput  = "/dms/allocation/exec/input"  // ExecInput → struct{}
	BehaviorExecOutput = "/dms/allocation/exec/output" // ExecOutputRequest → ExecOutput
)

// ExecRequest starts a command in a running allocation.
type ExecRequest struct {
	Cmd   []string `json:"cmd"`
	Stdin bool     `json:"stdin"` // input will come with BehaviorExecInput
	TTY   bool     `json:"tty"`
	Rows  int      `json:"rows,omitempty"`
	Cols  int      `json:"cols,omitempty"`
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// ExecStarted names the session of a started command.
type ExecStarted struct {
	Session string `json:"session"`
}

// ExecInput is input for a session's command; EOF closes its stdin after
// Data. Data is at most ExecChunk bytes. Rows and Cols, when both are set,
// resize the session's terminal. Close ends the session at once (the
// client went away): its command's streams are closed.
type ExecInput struct {
	Session string `json:"session"`
	Data    []byte `json:"data,omitempty"`
	EOF     bool   `json:"eof,omitempty"`
	Rows    int    `json:"rows,omitempty"`
	Cols    int    `json:"cols,omitempty"`
	Close   bool   `json:"close,omitempty"`
}

// ExecOutputRequest reads a session's output, waiting up to Wait for some
// when there is none (long poll).
type ExecOutputRequest struct {
	Session string        `json:"session"`
	Wait    time.Duration `json:"wait"`
}

// ExecOutput is the output of a session's command since the last request
// (at most ExecChunk bytes in all); Exited once it has ended and all output
// was read, with its exit code, or Error when it could not run.
type ExecOutput struct {
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	Exited   bool   `json:"exited,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ExecChunk is the most input or output one exec message carries.
const ExecChunk = 64 << 10

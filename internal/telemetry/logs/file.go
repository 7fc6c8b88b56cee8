package logs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Options configures NewLogger.
type Options struct {
	Level  slog.Level
	Format string    // "text" or "json" on Stderr
	Stderr io.Writer // nil: no standard error output
	// File, when set, receives every record as JSON; relative paths are
	// under Home. It is rotated at MaxSize bytes (rounded up to MiB),
	// keeping MaxFiles rotated files. Files are mode 0600.
	File     string
	Home     string
	MaxSize  int64
	MaxFiles int
}

// Logger is the node's logger and what it writes to.
type Logger struct {
	*slog.Logger
	base slog.Handler // the handlers without any tee (Tee adds to it)
	file *lumberjack.Logger
}

// NewLogger builds the node's logger (see Options). Close it to close the
// file.
func NewLogger(o Options) (*Logger, error) {
	opts := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: ReplaceAttr}
	var hs []slog.Handler
	if o.Stderr != nil {
		switch o.Format {
		case "json":
			hs = append(hs, slog.NewJSONHandler(o.Stderr, opts))
		case "text", "":
			hs = append(hs, slog.NewTextHandler(o.Stderr, opts))
		default:
			return nil, fmt.Errorf("log format %q: want text or json", o.Format)
		}
	}
	l := &Logger{}
	if o.File != "" {
		f, err := OpenFile(o.File, o.Home, o.MaxSize, o.MaxFiles)
		if err != nil {
			return nil, err
		}
		l.file = f
		hs = append(hs, slog.NewJSONHandler(f, opts))
	}
	l.base = multi(hs)
	l.Logger = slog.New(WithTrace(l.base))
	return l, nil
}

// Tee returns a logger that writes to l's handlers and to h (a Sink's
// handler).
func (l *Logger) Tee(h slog.Handler) *slog.Logger {
	return slog.New(WithTrace(multi([]slog.Handler{l.base, h})))
}

// Close closes the log file, if any.
func (l *Logger) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

func multi(hs []slog.Handler) slog.Handler {
	switch len(hs) {
	case 0:
		return slog.DiscardHandler
	case 1:
		return hs[0]
	}
	return slog.NewMultiHandler(hs...)
}

// OpenFile opens the rotated log file at path (relative paths are under
// home), creating its directory (0700). Rotated files are named with a
// timestamp beside it; maxFiles of them are kept.
func OpenFile(path, home string, maxSize int64, maxFiles int) (*lumberjack.Logger, error) {
	if path == "" {
		return nil, errors.New("log file: empty path")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(home, path)
	}
	if maxSize <= 0 || maxFiles < 1 {
		return nil, fmt.Errorf("log file %s: max size %d and max files %d must be positive", path, maxSize, maxFiles)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	// lumberjack creates new files 0600 but keeps the mode of an existing
	// one: make sure it is 0600 from the start.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	err = f.Chmod(0o600)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	const mib = 1 << 20
	return &lumberjack.Logger{
		Filename:   path,
		MaxSize:    int((maxSize + mib - 1) / mib),
		MaxBackups: maxFiles,
		LocalTime:  false,
	}, nil
}

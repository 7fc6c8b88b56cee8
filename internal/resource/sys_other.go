//go:build !linux

package resource

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("not supported on this operating system")

func statfs(string) (total, free uint64, err error) { return 0, 0, errUnsupported }

func dropCache(*os.File) error { return errUnsupported }

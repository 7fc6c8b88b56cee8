//go:build !linux

package docker

import (
	"context"
	"errors"
)

func watchEmpty(context.Context, string) (<-chan struct{}, error) {
	return nil, errors.New("cgroup events are Linux only")
}

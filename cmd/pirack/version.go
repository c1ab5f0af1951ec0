package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pirack/pirack/internal/buildinfo"
)

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintln(stdout, "pirack", buildinfo.Version())
	return err
}

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/serve"
)

func runServe(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("serve takes no arguments: it is configured by SEQUOIA_* variables")
	}
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	s, err := serve.New(cfg, serve.NewLogger(cfg.Serving, os.Stderr))
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/flowstory"
)

// flowCmd is `fallback flow REQUEST_ID`: it tells a flow's story from its
// state in Redis (package internal/flowstory, which the console renders
// too), the recipient masked unless --reveal and the params' and
// metadata's values hidden unless --show-params.
func flowCmd(ctx context.Context, args []string) error {
	return flowCommand(ctx, args, os.Stdout)
}

// flowCommand is flowCmd writing to stdout, for the tests.
func flowCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("flow", "flow [flags] REQUEST_ID", cliconfig.GroupRedis)
	var opt flowstory.Options
	fs.BoolVar(&opt.Reveal, "reveal", false, "print the recipient unmasked")
	fs.BoolVar(&opt.ShowParams, "show-params", false, "print the values of the template params and of the metadata (hidden by default: a param is often an OTP code)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the story (fields: docs/flow-command.md)")
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: fallback flow [flags] REQUEST_ID")
	}
	rc, store, err := redisStore(c)
	if err != nil {
		return err
	}
	defer rc.Close()
	story, err := flowstory.Load(ctx, store, fs.Arg(0), opt)
	if err != nil {
		return err
	}
	if *asJSON {
		return story.WriteJSON(stdout)
	}
	return story.WriteText(stdout)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// `fallback schemas print|register`: the Avro contract, and the schema
// registry subjects of the topics (docs/schema-registry.md).

const schemasUsage = `usage: fallback schemas print [RECORD]     without RECORD: each record's name and fingerprint;
                                          with one (SendRequest, FlowEvent...): its .avsc
       fallback schemas register [flags]  register each topic's schema under "<topic>-value"
                                          in --schema-registry, and print the ids
'fallback schemas register -h' lists the flags (docs/schema-registry.md).
`

func schemasCmd(ctx context.Context, args []string) error {
	return schemasCommand(ctx, args, os.Stdout)
}

// schemasCommand is schemasCmd writing to stdout, for the tests.
func schemasCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, schemasUsage)
		return usageError("schemas: give print or register")
	}
	codecs, err := schemas.New()
	if err != nil {
		return err
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "-h", "--help", "-help":
		fmt.Fprint(stdout, schemasUsage)
		return errDone
	case "print":
		return printSchemas(codecs, rest, stdout)
	case "register":
		return registerSchemas(ctx, codecs, rest, stdout)
	default:
		fmt.Fprint(os.Stderr, schemasUsage)
		return usageError(fmt.Sprintf("schemas: unknown subcommand %q: give print or register", sub))
	}
}

func printSchemas(codecs *schemas.Codecs, args []string, stdout io.Writer) error {
	switch len(args) {
	case 0:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RECORD\tFINGERPRINT (CRC-64-AVRO)")
		for _, info := range codecs.All() {
			fmt.Fprintf(tw, "%s\t%s\n", info.Name(), info.Fingerprint())
		}
		return tw.Flush()
	case 1:
		for _, info := range codecs.All() {
			if args[0] == info.Name() || args[0] == strings.TrimPrefix(info.Name(), schemas.Namespace+".") {
				_, err := io.WriteString(stdout, info.Schema())
				return err
			}
		}
		names := make([]string, 0, len(codecs.All()))
		for _, info := range codecs.All() {
			names = append(names, strings.TrimPrefix(info.Name(), schemas.Namespace+"."))
		}
		return usageError(fmt.Sprintf("schemas print: no record %q: give one of %s", args[0], strings.Join(names, ", ")))
	default:
		return usageError("usage: fallback schemas print [RECORD]")
	}
}

func registerSchemas(ctx context.Context, codecs *schemas.Codecs, args []string, stdout io.Writer) error {
	fs, c := newFlags("schemas register", "schemas register [flags]", cliconfig.GroupTopics|cliconfig.GroupSchemaRegistry)
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("usage: fallback schemas register [flags]")
	}
	if !c.Registry.Enabled() {
		return usageError("schemas register: give the registry with --schema-registry (FALLBACK_SCHEMA_REGISTRY)")
	}
	reg, err := c.Registry.Client()
	if err != nil {
		return err
	}
	subjects := processor.Subjects(c.Names, flow.DefaultChannels().Names(), codecs)
	ids, err := processor.Register(ctx, reg, subjects)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tRECORD\tSCHEMA ID")
	for _, s := range subjects {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", s.Name, s.Record.Name(), ids[s.Record.Name()])
	}
	return tw.Flush()
}

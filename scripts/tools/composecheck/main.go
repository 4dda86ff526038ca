// composecheck loads a Compose project the way `docker compose config` does (compose-go:
// the Compose Specification's JSON schema, variable interpolation, extends/anchors,
// consistency checks such as depends_on naming a real service) and prints the resolved
// project as YAML, or the error and exit status 1. It needs no Docker daemon and no
// Docker CLI plugin.
//
//	composecheck [-q] FILE...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	quiet := flag.Bool("q", false, "only validate, print nothing")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-q] FILE...")
		os.Exit(2)
	}
	ctx := context.Background()
	options, err := cli.NewProjectOptions(flag.Args(), cli.WithOsEnv, cli.WithDotEnv, cli.WithConsistency(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	project, err := options.LoadProject(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if *quiet {
		return
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	_, _ = os.Stdout.Write(out)
}

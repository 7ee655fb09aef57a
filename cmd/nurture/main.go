// Command nurture is the Nurture drip nurturing engine: one binary whose
// subcommands run the engine (dev, serve), manage its database (migrate),
// check and prove content (validate, simulate, schema), publish test events
// (publish) and measure it (bench). See `nurture --help`.
package main

import (
	"os"

	"github.com/nurture-oss/nurture/internal/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}

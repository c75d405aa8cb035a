// Command mgw is an API gateway: a master process, N workers sharing one
// listening socket, configuration pushed over IPC, and reloads that lose
// no request. See README.md.
package main

import (
	"os"

	"github.com/mgw-gateway/mgw/cmd/mgwcmd"
)

func main() { os.Exit(mgwcmd.Main(os.Args)) }

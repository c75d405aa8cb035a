package master

import (
	"net"
	"os"

	"github.com/mgw-gateway/mgw/ipc"
)

func fileConn(f *os.File) (*ipc.Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return ipc.NewConn(nc), nil
}

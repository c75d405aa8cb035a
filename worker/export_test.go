package worker

import (
	"bufio"
	"net"
	"os"

	"github.com/mgw-gateway/mgw/ipc"
)

func connFromFile(f *os.File) (*ipc.Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return ipc.NewConn(nc), nil
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

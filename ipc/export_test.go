package ipc

import (
	"net"
	"os"
)

func fileConn(f *os.File) (*Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return NewConn(nc), nil
}

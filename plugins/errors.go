package plugins

import (
	"encoding/json"
	"net/http"
	"strconv"
)

type errorBody struct {
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// WriteError answers with one of the JSON error bodies of docs/COMPATIBILITY.md,
// {"message":…,"status":…}, always with Content-Type application/json.
func WriteError(w http.ResponseWriter, status int, message string) {
	b, _ := json.Marshal(errorBody{Message: message, Status: status})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

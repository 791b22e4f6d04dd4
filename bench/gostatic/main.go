// Command gostatic serves one file's bytes at one path with Go's net/http
// and nothing else: the floor under any Go HTTP server on the machine,
// which bench/http-vs-nginx measures beside fbpub and nginx.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	path := flag.String("path", "/", "URL path to serve")
	file := flag.String("file", "", "file whose bytes to serve")
	flag.Parse()
	body, err := os.ReadFile(*file)
	if err != nil {
		log.Fatal(err)
	}
	length := []string{strconv.Itoa(len(body))}
	ctype := []string{"text/calendar; charset=utf-8"}
	// net/http sets the Content-Length of a body written whole that fits
	// in its 2 KiB response buffer, outside the header map, which is
	// cheaper; a larger one needs the header, or it would be chunked.
	implicit := len(body) <= 2048
	http.HandleFunc(*path, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = ctype
		if !implicit {
			h["Content-Length"] = length
		}
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/updater"
)

func init() {
	extraCommands["status"] = runStatus
}

// runStatus prints the status page's JSON. It asks the running daemon
// first; without one it builds the same document from the state file,
// the release file and Tor's control port.
func runStatus(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("verify status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath, "config file")
	addr := fs.String("addr", "", "daemon status address (default: the first listen address in the config)")
	local := fs.Bool("local", false, "do not ask the daemon; read state and Tor directly")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "verify status: %v\n", err)
		return exitUsage
	}
	if *addr == "" && len(cfg.Listen) > 0 {
		*addr = dialable(cfg.Listen[0])
	}
	if !*local && *addr != "" {
		fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		body, err := status.Fetch(fctx, *addr)
		cancel()
		if err == nil {
			stdout.Write(body)
			return exitOK
		}
		fmt.Fprintf(stderr, "verify status: daemon not reachable (%v); reading state directly\n", err)
	}
	page, err := cfg.page()
	if err != nil {
		fmt.Fprintf(stderr, "verify status: %v\n", err)
		return exitUsage
	}
	snap := status.Snapshot{Time: time.Now().UTC(), Firmware: cfg.firmware()}
	snap.Tor, _ = cfg.torStatus(ctx)
	if st, err := updater.ReadState(cfg.State); err == nil {
		snap.Update = updateSnapshot(st)
	} else {
		fmt.Fprintf(stderr, "verify status: %v\n", err)
	}
	stdout.Write(page.JSON(snap, nil))
	return exitOK
}

// dialable turns a listen address into one to connect to: ":80" and
// "0.0.0.0:80" mean this host.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Package dnsplugin is the "dns" plugin: Twisted's twistd dns, a DNS
// server answering from hosts files and zone files.
package dnsplugin

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/dnsserver"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/internal/clientaddr"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/service"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "dns",
		Description: "A domain name server answering from hosts files and zone files, over UDP and TCP.",
		Usage: `Examples:
  torsion dns -p 5353 --interface 127.0.0.1 --hosts-file /etc/hosts
  torsion dns -p 5353 --bindzone example.org.zone
  dig @127.0.0.1 -p 5353 localhost
  torsion dns --tcp systemd:domain=INET:name=dns-tcp --udp systemd:domain=INET:name=dns-udp --bindzone example.org.zone

Answers are authoritative for the names the files hold; NXDOMAIN and NODATA
carry the zone's SOA; names outside them are REFUSED, or with --recursive
asked of upstream resolvers (and with --cache kept for their TTLs). A file
changed on disk is read again, as all are on SIGHUP (if they do not load,
the old answers go on).`,
		Flags: flags,
	})
}

func flags(fs *pflag.FlagSet) plugin.Maker {
	var port int
	var iface string
	var hosts, zones, upstreams []string
	var recursive, cache bool
	var resolvConf, allowRecursion, tcp, udp string
	var cacheBytes int
	fs.IntVarP(&port, "port", "p", 53, "`PORT` to listen on, UDP and TCP (0: any free port)")
	fs.StringVarP(&iface, "interface", "i", "", "`ADDR` to listen on (default: every address)")
	fs.StringVar(&tcp, "tcp", "", "listen for TCP on this endpoint `DESCRIPTION` instead of --port and --interface (systemd:domain=INET:name=dns-tcp, say)")
	fs.StringVar(&udp, "udp", "", "receive UDP on this endpoint `DESCRIPTION` (udp:PORT[:interface=ADDR], or systemd:domain=INET:name=dns-udp) instead of --tcp's address and port")
	fs.StringArrayVar(&hosts, "hosts-file", nil, "answer from this hosts(5) `FILE`: A and AAAA for its names, PTR for its addresses (repeatable)")
	fs.StringArrayVar(&zones, "bindzone", nil, "answer for the zone in this RFC 1035 master `FILE` (repeatable)")
	fs.BoolVarP(&recursive, "recursive", "r", false, "ask upstream resolvers the names the files do not hold, instead of refusing them")
	fs.StringVar(&resolvConf, "resolv-conf", "/etc/resolv.conf", "with --recursive, the upstream resolvers are this `FILE`'s nameservers")
	fs.StringArrayVar(&upstreams, "upstream", nil, "with --recursive, ask this resolver `HOST:PORT` instead of --resolv-conf's (repeatable)")
	fs.BoolVarP(&cache, "cache", "c", false, "with --recursive, keep upstream answers for as long as their TTLs allow (twistd dns -c)")
	plugin.BytesVar(fs, &cacheBytes, "cache-bytes", "", 8<<20, "with --cache, the most `BYTES` of answers kept (as on the wire)")
	fs.StringVar(&allowRecursion, "allow-recursion", "", "with --recursive, the comma-separated `LIST` of client addresses and CIDR prefixes whose names are forwarded, * for all (default: loopback and private networks); others are refused")
	return func(env plugin.Env) (service.Service, error) {
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("--port %d: want 0 to 65535", port)
		}
		if len(hosts) == 0 && len(zones) == 0 && !recursive {
			return nil, fmt.Errorf("nothing to answer from: give --hosts-file, --bindzone or --recursive")
		}
		var fwd *dnsserver.Forwarder
		if recursive {
			if len(upstreams) == 0 {
				var err error
				if upstreams, err = dnsserver.ResolvConf(resolvConf); err != nil {
					return nil, err
				}
			}
			if cacheBytes <= 0 {
				return nil, fmt.Errorf("--cache-bytes must be positive")
			}
			fwd = &dnsserver.Forwarder{Upstreams: upstreams, Cache: cache, CacheBytes: cacheBytes}
		} else if cache || len(upstreams) > 0 || fs.Changed("resolv-conf") || fs.Changed("allow-recursion") || fs.Changed("cache-bytes") {
			return nil, fmt.Errorf("--cache, --cache-bytes, --upstream, --resolv-conf and --allow-recursion need --recursive")
		}
		recursion, err := clientaddr.ParsePrefixes(allowRecursion)
		if err != nil {
			return nil, fmt.Errorf("--allow-recursion: %w", err)
		}
		// Load once now, so that a bad file is a usage error at start.
		if _, err := dnsserver.Load(hosts, zones); err != nil {
			return nil, err
		}
		var stream endpoint.Server = endpoint.TCP{Port: port, Interface: iface}
		var packet endpoint.PacketServer
		if tcp != "" {
			if fs.Changed("port") || fs.Changed("interface") {
				return nil, fmt.Errorf("--tcp replaces --port and --interface: give one or the other")
			}
			if stream, err = endpoint.Parse(tcp); err != nil {
				return nil, fmt.Errorf("--tcp: %w", err)
			}
		}
		if udp != "" {
			if packet, err = endpoint.ParsePacket(udp); err != nil {
				return nil, fmt.Errorf("--udp: %w", err)
			}
		}
		var answered func(string, int, time.Duration)
		if env.Metrics != nil {
			if answered, err = answerMetrics(env.Metrics); err != nil {
				return nil, err
			}
		}
		return &dnsserver.Server{
			Answered:   answered,
			TCP:        stream,
			UDP:        packet,
			HostsFiles: hosts,
			ZoneFiles:  zones,
			Forward:    fwd,
			Recursion:  recursion,
			Log:        env.Log.With(logging.SystemKey, "dns"),
		}, nil
	}
}

var _ service.Reloader = (*dnsserver.Server)(nil)

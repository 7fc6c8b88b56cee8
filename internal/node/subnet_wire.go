//go:build linux

package node

import (
	"errors"
	"net"

	"github.com/dmsnet/dms/internal/subnet/dns"
	"github.com/dmsnet/dms/internal/subnet/link"
	"github.com/dmsnet/dms/internal/subnet/router"
)

// newDataPath builds the subnet data path on the node's libp2p host: the
// router (subnet/router), its DNS (subnet/dns, default configuration: the
// provider's resolvers) and TUN interfaces in containers (subnet/link).
func (n *Node) newDataPath() (*subnets, error) {
	d, err := dns.New(dns.Config{})
	if err != nil {
		return nil, err
	}
	rc := router.Config{Host: n.host.Libp2p(), Log: n.log, DNS: d}
	if n.cfg.Config.Subnet.Datagrams {
		// An ephemeral port on every address: the port is told to each
		// peer in the authenticated setup, the address is the one its
		// libp2p connection sees.
		// Without a socket the streams carry the packets.
		if rc.Datagram, err = net.ListenUDP("udp4", &net.UDPAddr{}); err != nil {
			n.log.Warn("subnet datagrams off: no UDP socket, packets take libp2p streams", "err", err)
			rc.Datagram = nil
		}
	}
	r, err := router.New(rc)
	if err != nil {
		if rc.Datagram != nil {
			rc.Datagram.Close()
		}
		d.Close()
		return nil, err
	}
	stats := func() pathStats {
		st := r.Stats()
		ps := pathStats{Forwarded: st.Forwarded, Datagrams: st.Datagrams, Delivered: st.Delivered,
			Sessions: st.Sessions, Fallbacks: st.Fallbacks, ReadErrors: st.ReadErrors, Dropped: st.Dropped}
		ds := d.Stats()
		ps.DNS.Local, ps.DNS.Forwarded, ps.DNS.Failed, ps.DNS.Dropped = ds.Local, ds.Forwarded, ds.Failed, ds.Dropped
		return ps
	}
	s := newSubnets(n.log, n.db, withDNS{r, d}, stats, link.OpenTUN)
	s.openGuest = link.GuestPair
	return s, nil
}

// withDNS is the router, whose Close also closes its DNS server.
type withDNS struct {
	*router.Router
	dns *dns.Server
}

func (w withDNS) Close() error { return errors.Join(w.Router.Close(), w.dns.Close()) }

// SPDX-License-Identifier: Apache-2.0

package mqttbridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultMaxPacketSize bounds every MQTT packet the bridge reads, from
// the device or the broker (fixed header included), unless
// Upstream.MaxPacketSize says otherwise.
const DefaultMaxPacketSize = 256 << 10

// ErrPacketTooLarge is returned (wrapped) when a packet's declared size is
// above the limit; the bridge reads no further than its header.
var ErrPacketTooLarge = errors.New("mqttbridge: packet too large")

// errMalformed wraps every decoding failure.
var errMalformed = errors.New("mqttbridge: malformed packet")

// readPacket reads one MQTT packet of the given protocol version (4 for
// 3.1.1, 5) from r. The size is checked from the fixed header before the
// body is read, so a peer cannot make the bridge allocate more than max
// bytes. Each packet gets its own buffer: the decoder's strings alias it.
func readPacket(r *bufio.Reader, version byte, max int) (*packets.Packet, error) {
	hb, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	pk := &packets.Packet{ProtocolVersion: version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return nil, fmt.Errorf("%w: fixed header: %v", errMalformed, err)
	}
	n, lenBytes, err := packets.DecodeLength(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: remaining length: %v", errMalformed, err)
	}
	if 1+lenBytes+n > max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrPacketTooLarge, 1+lenBytes+n, max)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if err := decodeBody(pk, body); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errMalformed, packetName(pk.FixedHeader.Type), err)
	}
	return pk, nil
}

// decodeBody decodes body into pk by type. The library indexes past the
// end of some truncated bodies (a v5 SUBSCRIBE whose last filter lacks
// its options byte), so a panic in it is turned into an error: a device
// must never crash the gateway.
func decodeBody(pk *packets.Packet, body []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder: %v", p)
		}
	}()
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if err := pk.ConnectDecode(body); err != nil {
			return err
		}
		if c := pk.ConnectValidate(); c != packets.CodeSuccess {
			return c
		}
		return nil
	case packets.Connack:
		return pk.ConnackDecode(body)
	case packets.Publish:
		return pk.PublishDecode(body)
	case packets.Puback:
		return pk.PubackDecode(body)
	case packets.Pubrec:
		return pk.PubrecDecode(body)
	case packets.Pubrel:
		return pk.PubrelDecode(body)
	case packets.Pubcomp:
		return pk.PubcompDecode(body)
	case packets.Subscribe:
		if err := pk.SubscribeDecode(body); err != nil {
			return err
		}
		if c := pk.SubscribeValidate(); c != packets.CodeSuccess {
			return c
		}
		return nil
	case packets.Suback:
		return pk.SubackDecode(body)
	case packets.Unsubscribe:
		if err := pk.UnsubscribeDecode(body); err != nil {
			return err
		}
		if c := pk.UnsubscribeValidate(); c != packets.CodeSuccess {
			return c
		}
		return nil
	case packets.Unsuback:
		return pk.UnsubackDecode(body)
	case packets.Pingreq, packets.Pingresp:
		if len(body) != 0 {
			return errors.New("unexpected body")
		}
		return nil
	case packets.Disconnect:
		// Decoded here: the library skips a reason code sent alone.
		if pk.ProtocolVersion == 5 && len(body) > 0 {
			pk.ReasonCode = body[0]
			if len(body) > 1 {
				if _, err := pk.Properties.Decode(packets.Disconnect, bytes.NewBuffer(body[1:])); err != nil {
					return err
				}
			}
		} else if len(body) > 0 {
			return errors.New("unexpected body")
		}
		return nil
	case packets.Auth:
		// Not decoded: the bridge supports no enhanced authentication
		// and answers any AUTH as a protocol error.
		return nil
	}
	return fmt.Errorf("unknown packet type %d", pk.FixedHeader.Type)
}

// encodePacket appends pk's wire form to buf.
func encodePacket(buf *bytes.Buffer, pk *packets.Packet) error {
	// Without AllowResponseInfo the library drops a PUBLISH's response
	// topic and correlation data; the bridge relays them.
	pk.Mods.AllowResponseInfo = true
	switch pk.FixedHeader.Type {
	case packets.Connect:
		return pk.ConnectEncode(buf)
	case packets.Connack:
		return pk.ConnackEncode(buf)
	case packets.Publish:
		return pk.PublishEncode(buf)
	case packets.Puback:
		return pk.PubackEncode(buf)
	case packets.Pubrec:
		return pk.PubrecEncode(buf)
	case packets.Pubrel:
		return pk.PubrelEncode(buf)
	case packets.Pubcomp:
		return pk.PubcompEncode(buf)
	case packets.Subscribe:
		return pk.SubscribeEncode(buf)
	case packets.Suback:
		return pk.SubackEncode(buf)
	case packets.Unsubscribe:
		return pk.UnsubscribeEncode(buf)
	case packets.Unsuback:
		return pk.UnsubackEncode(buf)
	case packets.Pingreq:
		return pk.PingreqEncode(buf)
	case packets.Pingresp:
		return pk.PingrespEncode(buf)
	case packets.Disconnect:
		return pk.DisconnectEncode(buf)
	}
	return fmt.Errorf("mqttbridge: cannot encode packet type %d", pk.FixedHeader.Type)
}

func packetName(t byte) string {
	if n, ok := packets.PacketNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", t)
}

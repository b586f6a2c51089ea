// SPDX-License-Identifier: Apache-2.0

package milenage

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// The conformance test sets 1 to 6 of 3GPP TS 35.208 §4.3.
var testSets = []struct {
	k, rand, sqn, amf, op, opc   string
	f1, f1s, f2, f3, f4, f5, f5s string
}{
	{"465b5ce8b199b49faa5f0a2ee238a6bc", "23553cbe9637a89d218ae64dae47bf35", "ff9bb4d0b607", "b9b9", "cdc202d5123e20f62b6d676ac72cb318", "cd63cb71954a9f4e48a5994e37a02baf",
		"4a9ffac354dfafb3", "01cfaf9ec4e871e9", "a54211d5e3ba50bf", "b40ba9a3c58b2a05bbf0d987b21bf8cb", "f769bcd751044604127672711c6d3441", "aa689c648370", "451e8beca43b"},
	{"0396eb317b6d1c36f19c1c84cd6ffd16", "c00d603103dcee52c4478119494202e8", "fd8eef40df7d", "af17", "ff53bade17df5d4e793073ce9d7579fa", "53c15671c60a4b731c55b4a441c0bde2",
		"5df5b31807e258b0", "a8c016e51ef4a343", "d3a628ed988620f0", "58c433ff7a7082acd424220f2b67c556", "21a8c1f929702adb3e738488b9f5c5da", "c47783995f72", "30f1197061c1"},
	{"fec86ba6eb707ed08905757b1bb44b8f", "9f7c8d021accf4db213ccff0c7f71a6a", "9d0277595ffc", "725c", "dbc59adcb6f9a0ef735477b7fadf8374", "1006020f0a478bf6b699f15c062e42b3",
		"9cabc3e99baf7281", "95814ba2b3044324", "8011c48c0c214ed2", "5dbdbb2954e8f3cde665b046179a5098", "59a92d3b476a0443487055cf88b2307b", "33484dc2136b", "deacdd848cc6"},
	{"9e5944aea94b81165c82fbf9f32db751", "ce83dbc54ac0274a157c17f80d017bd6", "0b604a81eca8", "9e09", "223014c5806694c007ca1eeef57f004f", "a64a507ae1a2a98bb88eb4210135dc87",
		"74a58220cba84c49", "ac2cc74a96871837", "f365cd683cd92e96", "e203edb3971574f5a94b0d61b816345d", "0c4524adeac041c4dd830d20854fc46b", "f0b9c08ad02e", "6085a86c6f63"},
	{"4ab1deb05ca6ceb051fc98e77d026a84", "74b0cd6031a1c8339b2b6ce2b8c4a186", "e880a1b580b6", "9f07", "2d16c5cd1fdf6b22383584e3bef2a8d8", "dcf07cbd51855290b92a07a9891e523e",
		"49e785dd12626ef2", "9e85790336bb3fa2", "5860fc1bce351e7e", "7657766b373d1c2138f307e3de9242f9", "1c42e960d89b8fa99f2744e0708ccb53", "31e11a609118", "fe2555e54aa9"},
	{"6c38a116ac280c454f59332ee35c8c4f", "ee6466bc96202c5a557abbeff8babf63", "414b98222181", "4464", "1ba00a1a7c6700ac8c3ff3e96ad08725", "3803ef5363b947c6aaa225e58fae3934",
		"078adfb488241a57", "80246b8d0186bcf1", "16c8233f05a0ac28", "3f8c7587fe8e4b233af676aede30ba3b", "a7466cc1e6b2a1337d49d3b66e95d7b4", "45b0f69ab06c", "1f53cd2b1113"},
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformanceSets(t *testing.T) {
	for i, ts := range testSets {
		k, op := unhex(t, ts.k), unhex(t, ts.op)
		opc, err := OPc(k, op)
		if err != nil {
			t.Fatal(err)
		}
		check := func(name string, got []byte, want string) {
			t.Helper()
			if !bytes.Equal(got, unhex(t, want)) {
				t.Errorf("test set %d: %s = %x, want %s", i+1, name, got, want)
			}
		}
		check("OPc", opc, ts.opc)
		c, err := New(k, opc)
		if err != nil {
			t.Fatal(err)
		}
		rand := unhex(t, ts.rand)
		macA, macS := c.F1(rand, unhex(t, ts.sqn), unhex(t, ts.amf))
		check("f1", macA, ts.f1)
		check("f1*", macS, ts.f1s)
		res, ck, ik, ak := c.F2345(rand)
		check("f2", res, ts.f2)
		check("f3", ck, ts.f3)
		check("f4", ik, ts.f4)
		check("f5", ak, ts.f5)
		check("f5*", c.F5Star(rand), ts.f5s)
	}
}

// A whole exchange: the network's vector, the card's check and answer;
// a replayed challenge refused by the card, which answers AUTS, from which
// the network learns the card's SQN and its next challenge is fresh again.
func TestAKAAndResync(t *testing.T) {
	ts := testSets[0]
	c, _ := New(unhex(t, ts.k), unhex(t, ts.opc))
	rand := unhex(t, ts.rand)
	amf := []byte{0x80, 0x00}
	var card Window
	sqnHE := MakeSQN(100, 3)
	v := c.NewVector(rand, sqnHE.Next(), amf)
	a, err := c.Authenticate(v.RAND, v.AUTN)
	if err != nil || !bytes.Equal(a.RES, v.XRES) || !bytes.Equal(a.CK, v.CK) || !bytes.Equal(a.IK, v.IK) || a.SQN != sqnHE.Next() {
		t.Fatalf("card's answer %+v, %v; vector %+v", a, err, v)
	}
	if !card.Accept(a.SQN) {
		t.Fatal("a fresh SQN was refused")
	}
	if card.Accept(a.SQN) {
		t.Fatal("the same challenge was accepted twice")
	}
	// The network lost its state (went back): the card refuses and resyncs.
	old := c.NewVector(rand, MakeSQN(5, 4), amf)
	a, _ = c.Authenticate(old.RAND, old.AUTN)
	if card.Accept(a.SQN) {
		t.Fatal("an old SQN was accepted")
	}
	auts := c.AUTS(rand, card.Highest())
	sqnMS, err := c.Resync(rand, auts)
	if err != nil || sqnMS != card.Highest() {
		t.Fatalf("resync: %v %v, card at %v", sqnMS, err, card.Highest())
	}
	next := c.NewVector(rand, sqnMS.Next(), amf)
	if a, err := c.Authenticate(next.RAND, next.AUTN); err != nil || !card.Accept(a.SQN) {
		t.Fatalf("after resync: %v", err)
	}
	// Beyond Delta: refused.
	if card.Accept(MakeSQN(card.Highest().Seq()+Delta+1, 0)) {
		t.Fatal("a SQN beyond Delta was accepted")
	}
	// Another subscriber's keys: MAC-A and MAC-S do not match.
	other, _ := New(unhex(t, testSets[1].k), unhex(t, testSets[1].opc))
	if _, err := other.Authenticate(v.RAND, v.AUTN); err != ErrMAC {
		t.Fatalf("a challenge of another K: %v", err)
	}
	if _, err := other.Resync(rand, auts); err != ErrMAC {
		t.Fatalf("an AUTS of another K: %v", err)
	}
}

func TestSQN(t *testing.T) {
	s := MakeSQN(0x123456789, 17)
	if s.Seq() != 0x123456789 || s.Ind() != 17 || ParseSQN(func() []byte { b := s.Bytes(); return b[:] }()) != s {
		t.Fatalf("SQN %x: seq %x ind %d", uint64(s), s.Seq(), s.Ind())
	}
	if n := MakeSQN(7, 31).Next(); n.Seq() != 8 || n.Ind() != 0 {
		t.Fatalf("next of 7/31: %d/%d", n.Seq(), n.Ind())
	}
}

func BenchmarkVector(b *testing.B) {
	c, _ := New(make([]byte, 16), make([]byte, 16))
	rand := make([]byte, 16)
	for b.Loop() {
		c.NewVector(rand, MakeSQN(1, 1), []byte{0x80, 0})
	}
}

// TestKc checks conversion c3 against test set 1 (TS 55.205 lists the
// GSM Kc of the same inputs: eae4be823af9a08b).
func TestKc(t *testing.T) {
	ck, _ := hex.DecodeString("b40ba9a3c58b2a05bbf0d987b21bf8cb")
	ik, _ := hex.DecodeString("f769bcd751044604127672711c6d3441")
	if got := hex.EncodeToString(Kc(ck, ik)); got != "eae4be823af9a08b" {
		t.Fatalf("Kc = %s, want eae4be823af9a08b", got)
	}
}

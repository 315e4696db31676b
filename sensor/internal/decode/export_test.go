package decode

// DecodeGeneral is Decode without the fast path, for tests comparing the two.
func (d *Decoder) DecodeGeneral(link LinkType, frame []byte, p *Packet) Result {
	return d.general(link, frame, 0, false, p)
}

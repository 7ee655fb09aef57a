package leadview

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Token purposes of the links in notifications.
const (
	// AckPurpose signs acknowledgement links (payload: AckClaim.Encode).
	AckPurpose = "ack"
	// PagePurpose signs lead page links (payload: the lead key).
	PagePurpose = "lead"
)

// ErrBadClaim is returned (wrapped) for a token payload that is not an
// acknowledgement claim.
var ErrBadClaim = errors.New("bad acknowledgement claim")

// AckClaim is what a signed acknowledgement link carries: the lead, the
// escalation and the rep it was sent to. The link is signed (HMAC) by the
// token package with purpose [AckPurpose]; this type only encodes the
// payload.
type AckClaim struct {
	Lead       string `json:"l"`
	Escalation string `json:"e"`
	Rep        string `json:"r"`
}

// Encode returns the claim as a token payload.
func (c AckClaim) Encode() []byte {
	b, _ := json.Marshal(c) // strings only: cannot fail
	return b
}

// DecodeAckClaim parses a token payload written by Encode.
func DecodeAckClaim(b []byte) (AckClaim, error) {
	var c AckClaim
	if err := json.Unmarshal(b, &c); err != nil {
		return AckClaim{}, fmt.Errorf("%w: %v", ErrBadClaim, err)
	}
	if c.Lead == "" || c.Escalation == "" || c.Rep == "" {
		return AckClaim{}, fmt.Errorf("%w: missing lead, escalation or rep", ErrBadClaim)
	}
	return c, nil
}

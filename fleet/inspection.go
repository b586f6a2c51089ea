// SPDX-License-Identifier: Apache-2.0

package fleet

// Inspection says whether the gateway measures a group's traffic and
// delivers a statistics record per interval (SORACOM Junction's
// inspection).
type Inspection struct {
	Enabled bool `json:"enabled"`
	// IntervalSeconds is the record's interval: 10 to 3600, default 60.
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
}

// DefaultInspectionInterval is the interval when none is given.
const DefaultInspectionInterval = 60

// Normalize checks the interval and fills its default.
func (i *Inspection) Normalize(prefix string) error {
	if i.IntervalSeconds == 0 {
		i.IntervalSeconds = DefaultInspectionInterval
	}
	if i.IntervalSeconds < 10 || i.IntervalSeconds > 3600 {
		return Errorf(CodeInvalid, prefix+".intervalSeconds", "between 10 and 3600 seconds")
	}
	return nil
}

// InspectionCategory is the data-store category of inspection records.
const InspectionCategory = "inspection"

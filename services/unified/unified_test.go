// SPDX-License-Identifier: Apache-2.0

package unified

import "testing"

func TestAnswerStatus(t *testing.T) {
	for _, c := range []struct {
		a    Answer
		want int
	}{
		{Answer{ServiceDataStore: {Status: 201}, ServiceForwarder: {Status: 200}}, 200},
		{Answer{ServiceDataStore: {Status: 201}}, 200},
		{Answer{ServiceDataStore: {Status: 201}, ServiceForwarder: {Status: 502}}, 207},
		{Answer{ServiceDataStore: {Status: 413}, ServiceForwarder: {Status: 200}}, 207},
		{Answer{ServiceDataStore: {Status: 413}, ServiceForwarder: {Status: 404}}, 413},
		{Answer{ServiceDataStore: {Status: 403}, ServiceForwarder: {Status: 504}}, 502},
		{Answer{ServiceForwarder: {Status: 504}}, 502},
	} {
		if got := c.a.Status(); got != c.want {
			t.Errorf("%+v: status %d, want %d", c.a, got, c.want)
		}
	}
}

// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"errors"
	"testing"
	"time"
)

func TestDataStoreSettings(t *testing.T) {
	ok := GroupSettings{DataStore: DataStoreSettings{Enabled: true, MaxPayload: 1000, TimestampPointer: "/ts", BatchPointer: "#", Category: "telemetry", Retention: "30d"}}
	if err := ok.Normalize("settings"); err != nil {
		t.Fatal(err)
	}
	if got := ok.DataStore.RetentionPeriod(); got != 30*24*time.Hour {
		t.Fatalf("retention %v", got)
	}
	if (DataStoreSettings{}).Limit() != DefaultMaxPayload || (DataStoreSettings{}).RecordCategory() != DefaultCategory {
		t.Fatal("defaults")
	}
	cases := []struct {
		d     DataStoreSettings
		field string
	}{
		{DataStoreSettings{MaxPayload: -1}, "settings.dataStore.maxPayload"},
		{DataStoreSettings{MaxPayload: MaxMaxPayload + 1}, "settings.dataStore.maxPayload"},
		{DataStoreSettings{TimestampPointer: "ts"}, "settings.dataStore.timestampPointer"},
		{DataStoreSettings{BatchPointer: "/a~2"}, "settings.dataStore.batchPointer"},
		{DataStoreSettings{Category: "has space"}, "settings.dataStore.category"},
		{DataStoreSettings{Retention: "forever"}, "settings.dataStore.retention"},
		{DataStoreSettings{Retention: "0d"}, "settings.dataStore.retention"},
		{DataStoreSettings{Retention: "10s"}, "settings.dataStore.retention"},
		{DataStoreSettings{Retention: "-5h"}, "settings.dataStore.retention"},
	}
	for _, c := range cases {
		s := GroupSettings{DataStore: c.d}
		err := s.Normalize("settings")
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: got %v, want error on %s", c.d, err, c.field)
		}
	}
}

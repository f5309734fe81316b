#include "common/units.h"

#include <gtest/gtest.h>

namespace zeppelin {
namespace {

TEST(ParseDuration, AcceptsGoStyleSequences) {
  EXPECT_EQ(parse_duration("250ms")->count(), 250);
  EXPECT_EQ(parse_duration("10s")->count(), 10000);
  EXPECT_EQ(parse_duration("1m30s")->count(), 90000);
  EXPECT_EQ(parse_duration("2h")->count(), 7200000);
  EXPECT_EQ(parse_duration("1.5s")->count(), 1500);
  EXPECT_EQ(parse_duration("0")->count(), 0);
}

TEST(ParseDuration, RejectsMalformedInput) {
  for (const char* bad : {"", "10", "s", "10 s", "-1s", "1d", "1s2", "ms", "1.2.3s", "1.s", ".5s"}) {
    auto d = parse_duration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_NE(d.error().message.find("invalid duration"), std::string::npos);
    }
  }
}

TEST(FormatDuration, PicksTheLargestExactUnit) {
  EXPECT_EQ(format_duration(std::chrono::milliseconds(90000)), "90s");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(120000)), "2m");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(0)), "0s");
}

TEST(ParseMemory, BinaryAndDecimalSuffixes) {
  EXPECT_EQ(*parse_memory("256Mi"), 256LL * 1024 * 1024);
  EXPECT_EQ(*parse_memory("1Gi"), 1024LL * 1024 * 1024);
  EXPECT_EQ(*parse_memory("1G"), 1000000000LL);
  EXPECT_EQ(*parse_memory("512k"), 512000LL);
  EXPECT_EQ(*parse_memory("4096"), 4096LL);
  EXPECT_EQ(*parse_memory("1.5Ki"), 1536LL);
}

TEST(ParseMemory, RejectsUnknownSuffixesAndZero) {
  for (const char* bad : {"256MB", "Mi", "", "0", "1 Gi", "-5Mi"}) EXPECT_FALSE(parse_memory(bad).ok()) << bad;
}

TEST(ParseCpu, CoresAndMillicores) {
  EXPECT_EQ(*parse_cpu("0.5"), 500);
  EXPECT_EQ(*parse_cpu("2"), 2000);
  EXPECT_EQ(*parse_cpu("250m"), 250);
  for (const char* bad : {"half", "0", "1.5x", "0m", ""}) EXPECT_FALSE(parse_cpu(bad).ok()) << bad;
}

}  // namespace
}  // namespace zeppelin

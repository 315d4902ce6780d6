// A 5 x 7 bitmap font drawn for convkit (convkit/viz.hpp): capitals, digits and the punctuation that layer names,
// shapes and class names need. Each glyph is 7 rows of 5 cells, '#' set, '.' clear, top row first.
#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

#include "convkit/viz.hpp"

namespace convkit::viz {

namespace {

struct Glyph {
  char c;
  std::string_view rows;  // 35 cells
};

constexpr std::array kGlyphs{
    Glyph{' ', "..................................."},
    Glyph{'!', "..#....#....#....#....#.........#.."},
    Glyph{'"', ".#.#..#.#.........................."},
    Glyph{'#', ".#.#..#.#.#####.#.#.#####.#.#..#.#."},
    Glyph{'%', "##...##..#...#...#...#...#..##...##"},
    Glyph{'\'', "..#....#..........................."},
    Glyph{'(', "...#...#...#....#....#.....#.....#."},
    Glyph{')', ".#.....#.....#....#....#...#...#..."},
    Glyph{'*', ".......#..#.#.#.###.#.#.#..#......."},
    Glyph{'+', ".......#....#..#####..#....#......."},
    Glyph{',', ".....................##....#...#..."},
    Glyph{'-', "...............#####..............."},
    Glyph{'.', "..........................##...##.."},
    Glyph{'/', "......#...#...#...#...#............"},
    Glyph{'0', ".###.#...##..###.#.###..##...#.###."},
    Glyph{'1', "..#...##....#....#....#....#...###."},
    Glyph{'2', ".###.#...#....#...#...#...#...#####"},
    Glyph{'3', "#####...#...#.....#.....##...#.###."},
    Glyph{'4', "...#...##..#.#.#..#.#####...#....#."},
    Glyph{'5', "######....####.....#....##...#.###."},
    Glyph{'6', "..##..#...#....####.#...##...#.###."},
    Glyph{'7', "#####....#...#...#...#....#....#..."},
    Glyph{'8', ".###.#...##...#.###.#...##...#.###."},
    Glyph{'9', ".###.#...##...#.####....#...#..##.."},
    Glyph{':', "......##...##........##...##......."},
    Glyph{';', "......##...##........##....#...#..."},
    Glyph{'<', "...#...#...#...#.....#.....#.....#."},
    Glyph{'=', "..........#####.....#####.........."},
    Glyph{'>', ".#.....#.....#.....#...#...#...#..."},
    Glyph{'?', ".###.#...#....#...#...#.........#.."},
    Glyph{'@', ".###.#...#....#.##.##.#.##.#.#.###."},
    Glyph{'A', ".###.#...##...#######...##...##...#"},
    Glyph{'B', "####.#...##...#####.#...##...#####."},
    Glyph{'C', ".###.#...##....#....#....#...#.###."},
    Glyph{'D', "###..#..#.#...##...##...##..#.###.."},
    Glyph{'E', "######....#....####.#....#....#####"},
    Glyph{'F', "######....#....####.#....#....#...."},
    Glyph{'G', ".###.#...##....#.####...##...#.####"},
    Glyph{'H', "#...##...##...#######...##...##...#"},
    Glyph{'I', ".###...#....#....#....#....#...###."},
    Glyph{'J', "..###...#....#....#....#.#..#..##.."},
    Glyph{'K', "#...##..#.#.#..##...#.#..#..#.#...#"},
    Glyph{'L', "#....#....#....#....#....#....#####"},
    Glyph{'M', "#...###.###.#.##.#.##...##...##...#"},
    Glyph{'N', "#...##...###..##.#.##..###...##...#"},
    Glyph{'O', ".###.#...##...##...##...##...#.###."},
    Glyph{'P', "####.#...##...#####.#....#....#...."},
    Glyph{'Q', ".###.#...##...##...##.#.##..#..##.#"},
    Glyph{'R', "####.#...##...#####.#.#..#..#.#...#"},
    Glyph{'S', ".#####....#.....###.....#....#####."},
    Glyph{'T', "#####..#....#....#....#....#....#.."},
    Glyph{'U', "#...##...##...##...##...##...#.###."},
    Glyph{'V', "#...##...##...##...##...#.#.#...#.."},
    Glyph{'W', "#...##...##...##.#.##.#.##.#.#.#.#."},
    Glyph{'X', "#...##...#.#.#...#...#.#.#...##...#"},
    Glyph{'Y', "#...##...#.#.#...#....#....#....#.."},
    Glyph{'Z', "#####....#...#...#...#...#....#####"},
    Glyph{'[', ".###..#....#....#....#....#....###."},
    Glyph{'\\', ".....#.....#.....#.....#.....#....."},
    Glyph{']', ".###....#....#....#....#....#..###."},
    Glyph{'_', "..............................#####"},
    Glyph{'|', "..#....#....#....#....#....#....#.."},
};

constexpr bool all_glyphs_complete() {
  for (const Glyph& g : kGlyphs)
    if (g.rows.size() != std::size_t(kGlyphWidth * kGlyphHeight)) return false;
  return true;
}
static_assert(all_glyphs_complete(), "every glyph has 7 rows of 5 cells");

const Glyph* find_glyph(char c) {
  const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kGlyphs)
    if (g.c == u) return &g;
  return nullptr;
}

}  // namespace

bool glyph_pixel(char c, int row, int col) {
  if (row < 0 || row >= kGlyphHeight || col < 0 || col >= kGlyphWidth) return false;
  if (const Glyph* g = find_glyph(c)) return g->rows[std::size_t(row * kGlyphWidth + col)] == '#';
  // No glyph: a hollow box, so that a missing character is visible rather than silently dropped.
  return row == 0 || row == kGlyphHeight - 1 || col == 0 || col == kGlyphWidth - 1;
}

int text_width(std::string_view text, int scale) {
  return text.empty() ? 0 : (kCellWidth * int(text.size()) - 1) * scale;
}

int text_height(std::string_view text, int scale) { return text.empty() ? 0 : kGlyphHeight * scale; }

void draw_text(Tensor& image, int64_t x, int64_t y, std::string_view text, const float (&rgb)[3], int scale) {
  const int64_t h = image.dim(0), w = image.dim(1), c = image.dim(2);
  const float grey = (rgb[0] + rgb[1] + rgb[2]) / 3.0f;
  for (std::size_t i = 0; i < text.size(); ++i)
    for (int row = 0; row < kGlyphHeight; ++row)
      for (int col = 0; col < kGlyphWidth; ++col) {
        if (!glyph_pixel(text[i], row, col)) continue;
        for (int sy = 0; sy < scale; ++sy)
          for (int sx = 0; sx < scale; ++sx) {
            const int64_t py = y + int64_t(row) * scale + sy;
            const int64_t px = x + (int64_t(i) * kCellWidth + col) * scale + sx;
            if (py < 0 || py >= h || px < 0 || px >= w) continue;
            float* p = image.data() + (py * w + px) * c;
            if (c >= 3)
              for (int k = 0; k < 3; ++k) p[k] = rgb[k];
            else
              p[0] = grey;
          }
      }
}

}  // namespace convkit::viz

# One warning policy for every target in the suite.
function(mailgrid_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Wformat=2 -Wimplicit-fallthrough
    # GCC 12 flags Asio's coroutine frame allocator as mismatched (a false
    # positive that comes and goes with inlining).
    $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>)
  if(MAILGRID_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

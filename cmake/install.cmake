# Installation, the CMake package, pkg-config, the man page, --version and the Debian packages
# (issue 17). Included once at the end of the top-level CMakeLists.txt, after every target exists.
#
# Layout under any prefix (GNUInstallDirs; the library directory is Debian's multiarch one whatever
# the prefix, as debhelper passes it, so that bin/ -> lib/<multiarch>/vfiobox/ is one relative path):
#   bin/vfiobox
#   lib/<multiarch>/vfiobox/libvfiobox-preload.so    found by `vfiobox run` relative to bin/
#   lib/<multiarch>/vfiobox/libvb_<layer>.a          the static layers (private names, private dir)
#   lib/<multiarch>/cmake/vfiobox/                   find_package(vfiobox CONFIG)
#   lib/<multiarch>/pkgconfig/vfiobox.pc
#   include/vfiobox/<layer>/*.h                      #include "topology/system.h" with -I.../vfiobox
#   share/man/man1/vfiobox.1.gz, share/doc/vfiobox/
# Components: "runtime" (the command, the preload library, the man page) and "dev" (everything an
# embedder links against); CPack makes one .deb of each.
#
# Installed files must not name the build or source tree (the install tests grep for it):
# __FILE__ (assert messages) is mapped to a relative path below; debug info keeps the absolute
# paths for debugging in the tree and is removed by `cmake --install --strip` and in the .debs.

if(NOT DEFINED CMAKE_INSTALL_LIBDIR AND CMAKE_LIBRARY_ARCHITECTURE)
  set(CMAKE_INSTALL_LIBDIR "lib/${CMAKE_LIBRARY_ARCHITECTURE}" CACHE PATH "Object code libraries (lib/<multiarch>)")
endif()
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VB_PKG_LIBDIR "${CMAKE_INSTALL_LIBDIR}/vfiobox")
set(VB_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/vfiobox")
set(VB_INCLUDE_DIR "${CMAKE_INSTALL_INCLUDEDIR}/vfiobox")

# The layers an embedder links (the preload layer is the .so's inside, not an API), and every vb_
# library they link, so that a layer added later needs no edit here.
set(VB_EXPORTED_LAYERS)
foreach(layer base faults hw iommu vfio devices topology uapi)
  if(TARGET vb_${layer})
    list(APPEND VB_EXPORTED_LAYERS ${layer})
  endif()
endforeach()
set(queue ${VB_EXPORTED_LAYERS})
while(queue)
  list(POP_FRONT queue layer)
  get_target_property(deps vb_${layer} INTERFACE_LINK_LIBRARIES)
  foreach(dep IN LISTS deps)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
    string(REGEX REPLACE "^vb_" "" dep_layer "${dep}")
    if(dep MATCHES "^vb_" AND TARGET ${dep} AND NOT dep_layer IN_LIST VB_EXPORTED_LAYERS)
      list(APPEND VB_EXPORTED_LAYERS ${dep_layer})
      list(APPEND queue ${dep_layer})
    endif()
  endforeach()
endwhile()

# --- version and the preload library's place, for src/cli/main.cc ---------------------------------
file(RELATIVE_PATH VB_PRELOAD_RELDIR "${CMAKE_INSTALL_FULL_BINDIR}" "${CMAKE_INSTALL_FULL_LIBDIR}/vfiobox")
target_compile_definitions(vfiobox PRIVATE VB_VERSION="${PROJECT_VERSION}" VB_PRELOAD_RELDIR="${VB_PRELOAD_RELDIR}")

# --- no source paths in installed code: __FILE__ relative to the source tree --------------------
# The source file's path as the compiler sees it: absolute, or relative to the build directory when
# ccache's base_dir rewrites it (then, from a build directory outside the source tree, it still
# spells the source tree: ../../work/wt/x/src/...). Note: ccache 4.7 leaves these options' values
# out of its hash, so after editing the maps, objects it had cached still carry the old __FILE__.
set(VB_PREFIX_MAPS "-fmacro-prefix-map=${CMAKE_SOURCE_DIR}/=")
if(NOT CMAKE_BINARY_DIR MATCHES "^${CMAKE_SOURCE_DIR}/")
  list(APPEND VB_PREFIX_MAPS "-fmacro-prefix-map=${CMAKE_BINARY_DIR}/=")
endif()
file(RELATIVE_PATH source_from_build "${CMAKE_BINARY_DIR}" "${CMAKE_SOURCE_DIR}")
string(REGEX REPLACE "/$" "" source_from_build "${source_from_build}")
if(source_from_build)
  list(APPEND VB_PREFIX_MAPS "-fmacro-prefix-map=${source_from_build}/=")
endif()
foreach(t IN LISTS VB_EXPORTED_LAYERS)
  target_compile_options(vb_${t} PRIVATE ${VB_PREFIX_MAPS})
endforeach()
foreach(t vb_preload vfiobox vfiobox-preload)
  target_compile_options(${t} PRIVATE ${VB_PREFIX_MAPS})
endforeach()

# --- the exported targets: vfiobox::<layer> and vfiobox::vfiobox (all of them) --------------------
# What each external target an exported layer links needs in the package files:
#   find_dependency() arguments ; pkg-config Requires ; pkg-config Libs
set(VB_DEP_Threads::Threads "Threads" "" "-pthread")
set(VB_DEP_fmt::fmt "fmt" "fmt" "")
set(VB_DEP_nlohmann_json::nlohmann_json "nlohmann_json 3" "nlohmann_json >= 3" "")
set(VB_DEP_Zydis::Zydis "zydis 4" "" "-lZydis")

set(VB_FIND_DEPENDENCIES "")
set(VB_PC_REQUIRES)
set(VB_PC_EXTERNAL_LIBS)
set(VB_PC_ORDER)  # the layers, each before the layers it uses (static link order)
function(vb_visit layer)
  if(layer IN_LIST VB_VISITED)
    return()
  endif()
  list(APPEND VB_VISITED ${layer})
  get_target_property(deps vb_${layer} INTERFACE_LINK_LIBRARIES)
  foreach(dep IN LISTS deps)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
    string(REGEX REPLACE "^vb_" "" dep_layer "${dep}")
    if(dep MATCHES "^vb_" AND dep_layer IN_LIST VB_EXPORTED_LAYERS)
      vb_visit(${dep_layer})
    elseif(DEFINED VB_DEP_${dep})
      list(GET VB_DEP_${dep} 0 find)
      list(GET VB_DEP_${dep} 1 req)
      list(GET VB_DEP_${dep} 2 libs)
      list(APPEND VB_FOUND_DEPS "${find}")
      if(req)
        list(APPEND VB_PC_REQUIRES "${req}")
      endif()
      if(libs)
        list(APPEND VB_PC_EXTERNAL_LIBS "${libs}")
      endif()
    elseif(dep MATCHES "::")
      # The exported targets would name it and nothing would find it: install.staged fails.
      message(WARNING "cmake/install.cmake: vb_${layer} links ${dep}; say what the installed package needs "
                      "for it with a set(VB_DEP_${dep} ...) line beside the others")
    elseif(dep MATCHES "^-")
      list(APPEND VB_PC_EXTERNAL_LIBS "${dep}")
    elseif(dep AND NOT dep MATCHES "^vb_|^\\$<")
      list(APPEND VB_PC_EXTERNAL_LIBS "-l${dep}")
    endif()
  endforeach()
  # Reverse post-order: every layer ends up before the layers it uses.
  list(PREPEND VB_PC_ORDER ${layer})
  foreach(v VB_VISITED VB_PC_ORDER VB_FOUND_DEPS VB_PC_REQUIRES VB_PC_EXTERNAL_LIBS)
    set(${v} "${${v}}" PARENT_SCOPE)
  endforeach()
endfunction()
set(VB_VISITED)
set(VB_FOUND_DEPS)
foreach(layer IN LISTS VB_EXPORTED_LAYERS)
  vb_visit(${layer})
endforeach()
list(REMOVE_DUPLICATES VB_FOUND_DEPS)
list(REMOVE_DUPLICATES VB_PC_REQUIRES)
list(REMOVE_DUPLICATES VB_PC_EXTERNAL_LIBS)
foreach(dep IN LISTS VB_FOUND_DEPS)
  string(APPEND VB_FIND_DEPENDENCIES "find_dependency(${dep})\n")
endforeach()

foreach(layer IN LISTS VB_EXPORTED_LAYERS)
  # The layers carry the source tree as a plain include path; installed, they carry include/vfiobox.
  set_property(TARGET vb_${layer} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "$<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/src>")
  set_property(TARGET vb_${layer} APPEND PROPERTY INTERFACE_COMPILE_FEATURES cxx_std_23)
  set_property(TARGET vb_${layer} PROPERTY EXPORT_NAME ${layer})
endforeach()
# base/mutex.h's lock-order check is inline code that must be on in the embedder's translation
# units exactly when it was on in the layers (NDEBUG decides), whatever the embedder's NDEBUG.
string(TOUPPER "${CMAKE_BUILD_TYPE}" build_type)
if(" ${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${build_type}} " MATCHES " -DNDEBUG ")
  set(VB_LOCK_ORDER_DEFINE VB_NO_LOCK_ORDER_CHECK)
else()
  set(VB_LOCK_ORDER_DEFINE VB_LOCK_ORDER_CHECK=1)
endif()
set_property(TARGET vb_base APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS "$<INSTALL_INTERFACE:${VB_LOCK_ORDER_DEFINE}>")
add_library(vb_all INTERFACE)
set_property(TARGET vb_all PROPERTY EXPORT_NAME vfiobox)
foreach(layer IN LISTS VB_EXPORTED_LAYERS)
  target_link_libraries(vb_all INTERFACE vb_${layer})
endforeach()

list(TRANSFORM VB_EXPORTED_LAYERS PREPEND vb_ OUTPUT_VARIABLE VB_EXPORTED_TARGETS)
install(TARGETS ${VB_EXPORTED_TARGETS} vb_all EXPORT vfioboxTargets
        ARCHIVE DESTINATION ${VB_PKG_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${VB_INCLUDE_DIR})
install(EXPORT vfioboxTargets NAMESPACE vfiobox:: DESTINATION ${VB_CMAKE_DIR} COMPONENT dev)
list(JOIN VB_EXPORTED_LAYERS ", " VB_EXPORTED_LAYERS_TEXT)
configure_file(${CMAKE_SOURCE_DIR}/cmake/vfioboxConfig.cmake.in ${CMAKE_BINARY_DIR}/generated/vfioboxConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/generated/vfioboxConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/generated/vfioboxConfig.cmake ${CMAKE_BINARY_DIR}/generated/vfioboxConfigVersion.cmake
        DESTINATION ${VB_CMAKE_DIR} COMPONENT dev)

# Public headers: the exported layers' headers, less the test-only ones (testing/ folders,
# *_test_util.h, testing_*.h and anything that includes gtest).
foreach(layer IN LISTS VB_EXPORTED_LAYERS)
  file(GLOB_RECURSE headers CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/src/${layer}/*.h)
  foreach(h IN LISTS headers)
    if(h MATCHES "(^|/)testing/|_test_util\\.h$|(^|/)testing_[^/]*\\.h$")
      continue()
    endif()
    file(STRINGS ${CMAKE_SOURCE_DIR}/src/${h} gtest REGEX "#include <(gtest|gmock)/")
    if(gtest)
      continue()
    endif()
    get_filename_component(dir ${h} DIRECTORY)
    install(FILES ${CMAKE_SOURCE_DIR}/src/${h} DESTINATION ${VB_INCLUDE_DIR}/${dir} COMPONENT dev)
  endforeach()
endforeach()

# pkg-config: written at install time, so that its prefix is the one installed to (`--prefix`,
# CPack's /usr), not the one configured.
list(TRANSFORM VB_PC_ORDER PREPEND "-lvb_" OUTPUT_VARIABLE VB_PC_LIBS)
list(JOIN VB_PC_LIBS " " VB_PC_LIBS)
list(JOIN VB_PC_EXTERNAL_LIBS " " VB_PC_EXTERNAL_LIBS)
list(JOIN VB_PC_REQUIRES ", " VB_PC_REQUIRES)
configure_file(${CMAKE_SOURCE_DIR}/cmake/vfiobox.pc.in ${CMAKE_BINARY_DIR}/generated/vfiobox.pc.in @ONLY)
install(CODE "
  file(READ \"${CMAKE_BINARY_DIR}/generated/vfiobox.pc.in\" pc)
  string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" pc \"\${pc}\")
  set(pc_file \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/vfiobox.pc\")
  message(STATUS \"Installing: \${pc_file}\")
  file(WRITE \"\${pc_file}\" \"\${pc}\")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${pc_file}\")
" COMPONENT dev)

# Static archives keep their debug info (and with it the build tree's paths) unless stripped:
# `cmake --install --strip` strips executables and shared objects only, so strip these too.
if(CMAKE_STRIP)
  foreach(layer IN LISTS VB_EXPORTED_LAYERS)
    install(CODE "
      if(CMAKE_INSTALL_DO_STRIP)
        execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-debug
          \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${VB_PKG_LIBDIR}/$<TARGET_FILE_NAME:vb_${layer}>\"
          COMMAND_ERROR_IS_FATAL ANY)
      endif()
    " COMPONENT dev)
  endforeach()
endif()

# --- the command, the preload library, the man page, the docs -------------------------------------
install(TARGETS vfiobox RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(TARGETS vfiobox-preload LIBRARY DESTINATION ${VB_PKG_LIBDIR} COMPONENT runtime NAMELINK_SKIP)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT runtime)

# The man page is the CLI's own --help (and each subcommand's), by help2man. Not in sanitized
# builds (nobody installs those, and running their vfiobox at build time would add a failure mode).
find_program(VB_HELP2MAN help2man)
find_program(VB_GZIP gzip)
if(VB_SANITIZE)
  # no man page
elseif(VB_HELP2MAN AND VB_GZIP)
  set(man ${CMAKE_BINARY_DIR}/generated/vfiobox.1.gz)
  add_custom_command(OUTPUT ${man}
    COMMAND ${CMAKE_COMMAND} -DVFIOBOX=$<TARGET_FILE:vfiobox> -DHELP2MAN=${VB_HELP2MAN} -DGZIP=${VB_GZIP}
            -DINCLUDE=${CMAKE_SOURCE_DIR}/cmake/vfiobox.h2m -DRELDIR=${VB_PRELOAD_RELDIR}
            -DOUT=${man} -P ${CMAKE_SOURCE_DIR}/cmake/manpage.cmake
    DEPENDS vfiobox ${CMAKE_SOURCE_DIR}/cmake/manpage.cmake ${CMAKE_SOURCE_DIR}/cmake/vfiobox.h2m
    COMMENT "Generating the vfiobox(1) man page with help2man" VERBATIM)
  add_custom_target(vfiobox_man ALL DEPENDS ${man})
  install(FILES ${man} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
else()
  message(WARNING "help2man or gzip not found: no vfiobox(1) man page (scripts/setup.sh installs help2man)")
endif()

# --- Debian packages: vfiobox (runtime) and libvfiobox-dev (dev) ----------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vfiobox)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "vfiobox")
set(CPACK_PACKAGE_CONTACT "vfiobox developers <vfiobox-dev@invalid>")
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPack would put it above both packages' descriptions, whose
# first lines are their own summaries.
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <package>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME vfiobox)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
    "Linux VFIO device assignment in userspace, on a simulated machine
vfiobox runs unmodified VFIO programs (drivers, VMMs, QEMU) against emulated DMA-capable PCI devices
behind a simulated IOMMU, with no IOMMU, no spare device and no root: the command vfiobox run --
PROGRAM serves /dev/vfio and /sys to PROGRAM through a preload library.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libvfiobox-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# The static layers need what they were built against: the C++ headers' dependencies and the
# shared libraries the embedder's program will link (find_dependency in vfioboxConfig.cmake).
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "vfiobox (= ${PROJECT_VERSION}), libfmt-dev, nlohmann-json3-dev (>= 3)")
if("zydis 4" IN_LIST VB_FOUND_DEPS)
  string(APPEND CPACK_DEBIAN_DEV_PACKAGE_DEPENDS ", libzydis-dev (>= 4)")
endif()
set(CPACK_DEBIAN_DEV_DESCRIPTION
    "vfiobox as C++ libraries: build a machine, drive VFIO, read the fault log
Static libraries, headers, a CMake package (find_package(vfiobox CONFIG), target vfiobox::vfiobox)
and a pkg-config file (vfiobox) for programs that drive the vfiobox machine from their own C++ code.")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
include(CPackComponent)
cpack_add_component(runtime DISPLAY_NAME "vfiobox command and preload library")
cpack_add_component(dev DISPLAY_NAME "vfiobox C++ libraries and headers")
include(CPack)

# --- tests: a staged install with the embedding example, and the .deb --------------------------------
# Both install from this build tree (nothing is rebuilt). Not under sanitizers: an instrumented
# library is not what anyone installs, and an embedder would need the same sanitizer flags.
if(NOT VB_SANITIZE)
  add_test(NAME install.staged
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/staged_install_test.sh
            ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR} ${CMAKE_COMMAND} ${CMAKE_CXX_COMPILER} "${CMAKE_GENERATOR}"
            ${CMAKE_MAKE_PROGRAM} $<TARGET_FILE:edu-dma> ${PROJECT_VERSION} ${CMAKE_INSTALL_LIBDIR})
  add_test(NAME install.deb
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/deb_test.sh
            ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR} ${CMAKE_CPACK_COMMAND} ${PROJECT_VERSION} $<TARGET_FILE:edu-dma>
            ${CMAKE_INSTALL_LIBDIR})
  # Each runs `cmake --install` of this tree, which writes install_manifest*.txt here.
  set_tests_properties(install.staged install.deb PROPERTIES TIMEOUT 600 RESOURCE_LOCK vfiobox_install)
endif()
